"""Runs: a run is a folder under the working folder. `artifacts` names its files and writes them
safely, `diskspace` turns a full disk into one line, `record` keeps the run's settings, state and
event log, `view` replays that for a page, and `store` lists and reads runs from disk.
"""
