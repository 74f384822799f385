"""Clips paired across videos: the partner whose states (leakage's stitched clips) or latents
(capacity's and the world model's swapped latents) come from another video."""

from __future__ import annotations


def partner_order(videos: list[str]) -> list[int]:
    """For clip i, the index of a clip from another video (the next one, cyclically, in a
    video-sorted order), or -1 when all clips share one video."""
    order = sorted(range(len(videos)), key=lambda i: videos[i])
    partner = [-1] * len(videos)
    for pos, i in enumerate(order):
        for step in range(1, len(order)):
            j = order[(pos + step) % len(order)]
            if videos[j] != videos[i]:
                partner[i] = j
                break
    return partner
