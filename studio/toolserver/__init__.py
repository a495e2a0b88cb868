"""toolserver"""
