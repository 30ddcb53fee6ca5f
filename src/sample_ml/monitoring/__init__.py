"""Monitoring: is new data still like the data the model was trained on?"""
