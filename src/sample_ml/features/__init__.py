"""Feature flows, each a scikit-learn transformer pipeline over pandas frames."""
