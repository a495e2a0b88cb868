"""engine/executors"""
