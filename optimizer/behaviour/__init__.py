"""Behaviours the engine calls: pure, documented, data-driven models of market participants.

- :mod:`optimizer.behaviour.keepers`: keepers in Maker Flipper (Liquidations 1.x) auctions.
"""
