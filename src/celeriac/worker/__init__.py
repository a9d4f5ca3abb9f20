"""The worker runtime. ``execution`` turns a broker delivery into a run task and a
settled message; the consumer loop, pools and CLI build on it.

Runtime layer: imports the app core and seams; never imports cli, testing or beat.
"""
