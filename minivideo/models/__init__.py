"""Recipes: complete models built from the layers below (image prior, VideoGPT, CogVideo)."""
