"""Measuring videos: image quality, reconstructions, the judge, FJD, captions, prediction error."""

from minivideo.metrics.captions import caption_accuracy
from minivideo.metrics.frechet import frechet_distance
from minivideo.metrics.image import psnr, sse_per_frame, ssim
from minivideo.metrics.judge import Judge, judge_accuracy, judge_features
from minivideo.metrics.prediction import prediction_error
from minivideo.metrics.reference import degrade, frechet_judge_distance, reference_points

__all__ = [
    "Judge", "caption_accuracy", "degrade", "frechet_distance", "frechet_judge_distance",
    "judge_accuracy", "judge_features", "prediction_error", "psnr", "reference_points",
    "sse_per_frame", "ssim",
]
