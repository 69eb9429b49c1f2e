"""The plant step's thresholds and distances, in one place, each with what it is for.

Distances are in mm, angles in degrees, probabilities in 0-1; the step converts mm
to model px with the plate's scale. Dev-plate figures for the rules they serve are in the
functions that use them and in docs/training.md.
"""

from __future__ import annotations

NOMINAL_PX_PER_MM = 21.0  # Hades sets measure 19-23 px/mm; used when the dish gives no scale
ROOT_LOW = 0.2  # hysteresis: a pixel this probable is root when it connects to a sure one
ATTACH_MM = 4.0  # a root starts within this of its shoot (the hypocotyl is often unsegmented)
GAP_MM = 3.0  # the longest gap in a root that is bridged
GAP_SUPPORT = 0.01  # mean root probability over a gap's unsure pixels for it to be bridged (bare agar: ~0)
GAP_PIECE_MM = 3.0  # a piece with this much skeleton is a stretch of root, not a speck or a fibre's crumb: ...
GAP_BARE_MM = 0.5  # ...a gap this short above it is bridged even over bare agar, ...
GAP_NEAR_MM = 0.3  # ...or to a node this much farther than the nearest, whose gap is supported
MIN_ROOT_MM = 1.0  # a root system shorter than this is not a plant's
LATERAL_MIN_MM = 1.0  # a branch shorter than this is a skeleton spur or a root hair, not a lateral
TIP_EVIDENCE_MM = 1.0  # a tip-detector peak this close to an end point confirms it
EXTEND_FADING = 0.8  # a root whose last millimetre is less probable than this is fading out: follow it
EXTEND_LOW = 0.12  # root probability that carries a faint tip on past the mask's end
EXTEND_MM = 3.0  # at most this far
EXTEND_GAP_MM = 0.7  # across unsupported stretches at most this long
AHEAD_MM = 2.0  # a tip-detector peak this far past a root's end, ...
AHEAD_ANGLE = 20.0  # ...within this many degrees of its direction, ...
AHEAD_SUPPORT = 0.05  # ...with this mean root probability between (bare agar: ~0), is its tip
FURTHER_MM = 3.0  # a peak this far ahead of an end a weaker peak confirms, ...
FURTHER_RATIO = 1.5  # ...this many times as strong, is the tip: the weaker one marks where the mask stopped
CUT_PEAK = 0.5  # a tip-detector peak this strong on a path before its end, ...
CUT_RATIO = 0.5  # ...and the detector at the path's end under this share of it: the root ends at the peak
CUT_MAX_MM = 4.0  # what is cut past such a peak (the mask running on into a drop) is at most this long
CUT_BRIDGED_PEAK = 0.8  # a peak this firm on a path, with a gap bridged after it, ...
CUT_BRIDGED_GAP_MM = 0.5  # ...of this much: the root ends at the peak, however far the path runs on
TURN_MM = 1.5  # a root's direction where paths part: over this much of it before and after
CROSS_MM = 1.0  # skeleton forks this close along the root are one junction (a shallow X forks twice)
CROSS_TURN = 45.0  # degrees: two roots crossing each run on within this of their direction
CLAIM_PEAK = 0.5  # a tip-detector peak this firm that no plant took is a flagged plant's tip, ...
CLAIM_ALONG_MM = 2.0  # ...unless its path there runs along another plant's primary root for more than this, ...
CLAIM_RISE_MM = 1.0  # ...or it lies higher than the end it would replace by more than this (roots grow down)
CLAIM_DETOUR = 3.0  # a claim's path is searched up to this many times the farthest candidate's straight-line distance
SWAP_TURN = 30.0  # degrees: two neighbours' tips are swapped where their paths then turn this much less, together
SWAP_MEET_MM = 0.3  # ...where their current paths come this close (they cross)
SWAP_DETOUR = 1.5  # a swapped path is searched up to this many times the longer of the two current ones
TURN_MARGIN = 15.0  # degrees: a path that turns this much more than another where they part is a lateral's
JOIN_MM = 6.0  # a root piece this far beyond a primary root's unconfirmed end may continue it, ...
JOIN_ANGLE = 25.0  # ...lying within this many degrees of the root's direction over its last mm...
JOIN_TURN = 35.0  # ...and running on within this many degrees of it over its first mm...
JOIN_SUPPORT = 0.05  # ...with this mean root probability along the gap (bare agar: ~0)
JOIN_MIN_MM = 0.5  # a piece shorter than this is a speck, not a root's stretch
PIECE_PEAK = 0.8  # a peak this firm ending a root piece no start reaches, ...
PIECE_MM = 3.0  # ...where the root breaks off (its direction over this much of it), ...
PIECE_TURN = 45.0  # ...within which a broken-off piece ending in a firm peak runs on
OTHER_TIP_PEAK = 0.7  # a lateral-tip peak this firm just past an end the primary-tip detector is silent at is the tip
ALTERNATIVE_POWER = 2.0  # a tip's confidence is scaled by (its path / the plant's longest path) ** this
TIE_HEAT = 0.02  # tip-detector values this close are a tie
MIN_SHOOT_MM2 = 1.5  # cotyledons of a young seedling are about 1.5 x 1 mm
MIN_SEED_MM2 = 0.05
ROW_BAND_MM = 6.0  # plants sit in a row: a root start farther than this above or below it is not a plant's
RING_MM = (5.0, 30.0)  # radius of a dish mould's ring (synthetic plates: 8-25 mm; HADES.md)
RING_FIT = 0.8  # share of a skeleton stretch within a quarter mm of a circle for it to lie on it
RING_ARC = 110.0  # degrees of a circle stretches on it cover for it to be a ring, not a root
SLOT_SPACING = 0.205  # of the dish width between neighbouring plants (five in a row, ~575 px of 2800)
# A faint tip followed in the photograph (trace.py), only where the tip detector does not confirm the end:
TRACE_STEP_MM = 0.25  # one step along the line
TRACE_MM = 3.0  # at most this far past the end
TRACE_ANGLE = 20.0  # each step turns at most this much from the root's direction
TRACE_CONTRAST = 3.0  # grey levels the line must stay darker than the agar beside it, at least...
TRACE_ROOT_SHARE = 0.4  # ...and this share of the root's own contrast over its last millimetre...
TRACE_NOISE = 3.0  # ...and this many robust deviations above the same measure on the agar beside the root
