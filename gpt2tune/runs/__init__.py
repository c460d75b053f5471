"""Runs: a run is a folder under the working folder. `artifacts` names its files and writes them
safely, `store` lists and reads runs from disk, and `runner` owns the one background training job
the app runs at a time.
"""
