"""Online learners, updated one example at a time as labels resolve in event time, each with a drift monitor.

``base`` holds the protocol and the drift monitor; one learner per module; ``factory`` names them all.
"""
