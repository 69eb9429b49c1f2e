"""Imaging conditions of a synthetic plate, as named presets or a 0-1 difficulty.

Drift studies need to move the image distribution one knob at a time (blur,
contrast, illumination, noise, condensation) while the plants stay the same,
so appearance is a value of its own, separate from plant geometry. The
`realistic` preset is the exception: it also changes the plants, the dish and
the image format (see realistic.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class Appearance:
    """Camera and plate conditions; 0 on every knob is an ideal, clean plate."""

    blur_sigma: float = 0.6  # camera defocus, px
    contrast: float = 1.0  # gain around mid-grey
    brightness: float = 0.0  # added grey levels
    vignetting: float = 0.10  # darkening at the dish corners (fraction)
    illumination_gradient: float = 0.04  # linear brightness ramp across the dish (fraction)
    band_strength: float = 0.06  # the brighter band across the agar (fraction)
    noise_sigma: float = 2.0  # sensor noise, grey levels
    condensation: float = 0.3  # 0 none ... 1 heavily fogged lid
    dust: float = 0.3  # 0 none ... 1 dirty
    # What real Hades plates show (synth/realistic.py): young and old seedlings, hidden
    # seeds, large drops with bright rims, scratches, fibres, debris, the mould mark,
    # 19-23 px/mm, cropped frames and 8-bit grey PNGs. The knobs above are then the
    # centres of a per-plate domain randomisation rather than fixed values.
    realistic: bool = False

    def to_dict(self) -> dict[str, float | bool]:
        return asdict(self)


PRESETS: dict[str, Appearance] = {
    "easy": Appearance(
        blur_sigma=0.3,
        vignetting=0.06,
        illumination_gradient=0.02,
        band_strength=0.04,
        noise_sigma=1.0,
        condensation=0.1,
        dust=0.1,
    ),
    "normal": Appearance(),
    "hard": Appearance(
        blur_sigma=1.4,
        contrast=0.8,
        vignetting=0.18,
        illumination_gradient=0.10,
        band_strength=0.10,
        noise_sigma=4.0,
        condensation=0.8,
        dust=0.7,
    ),
    # Single-knob shifts, for drift detection studies.
    "drift_blur": Appearance(blur_sigma=2.5),
    "drift_dark": Appearance(brightness=-45.0, contrast=0.75),
    "drift_noise": Appearance(noise_sigma=8.0),
    "drift_condensation": Appearance(condensation=1.0),
    "drift_illumination": Appearance(vignetting=0.30, illumination_gradient=0.20),
    # What goes wrong on real plates; every plate draws its own conditions around these.
    "realistic": Appearance(
        blur_sigma=0.9,
        contrast=0.95,
        vignetting=0.12,
        illumination_gradient=0.05,
        band_strength=0.07,
        noise_sigma=2.5,
        condensation=0.5,
        dust=0.5,
        realistic=True,
    ),
}


def appearance_for(difficulty: str | float) -> Appearance:
    """A preset by name, or a number in [0, 1] interpolating easy (0), normal (0.5), hard (1).
    Numbers interpolate the clean presets' knobs only (never `realistic`)."""
    if isinstance(difficulty, str):
        if difficulty in PRESETS:
            return PRESETS[difficulty]
        try:
            difficulty = float(difficulty)
        except ValueError:
            raise ValueError(
                f"unknown difficulty {difficulty!r}: expected a number in [0, 1] or one of {sorted(PRESETS)}"
            ) from None
    if not 0.0 <= difficulty <= 1.0:
        raise ValueError(f"difficulty must lie in [0, 1], got {difficulty}")
    lo, hi, t = (
        (PRESETS["easy"], PRESETS["normal"], difficulty * 2)
        if difficulty <= 0.5
        else (PRESETS["normal"], PRESETS["hard"], difficulty * 2 - 1)
    )
    values = {
        f.name: (1 - t) * getattr(lo, f.name) + t * getattr(hi, f.name)
        for f in fields(Appearance)
        if isinstance(getattr(lo, f.name), float)
    }
    return Appearance(**values)
