"""The lab: the discovery simulation, its data sets and the stream-sorting baseline.

It calls the scorer's shipped code (`train_and_select`); the scorer never imports the lab.
"""
