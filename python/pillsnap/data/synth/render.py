"""Drawing one synthetic pill photo: background, light, pills with shadow, imprint and score line.

:func:`render_photo` returns the image and the tight axis-aligned box of every pill as drawn.
Everything scales with the photo size, so 244x320 renders the same scene as 976x1280 in
miniature. It is called for every image by ``python -m pillsnap.data synth --out DIR ...``.

Pills are drawn unrotated at :data:`SUPERSAMPLE` times the final size (mask, capsule halves and
imprint in one RGB image), rotated there and area-averaged down, which gives smooth edges and
legible imprints cheaply; shading, shadow and compositing then happen at the final size on
the pill's own small patch. Drawing a 976x1280 photo takes about 65 ms for one pill and
115 ms for four on one core (encoding the PNG adds about 80 ms).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

from pillsnap.data.synth.catalog import Drug

logger = logging.getLogger(__name__)

# File-name field index -> label value and the look of it.
BACKGROUNDS = ("연회색 배경", "청색 배경", "검은색 배경")
_BACKGROUND_RGB = ((196, 198, 201), (112, 146, 190), (46, 47, 52))
LIGHTS = ("주백색", "백색", "전구색")
_LIGHT_GAIN = ((1.0, 1.0, 1.0), (0.96, 0.99, 1.04), (1.05, 1.0, 0.91))
ELEVATIONS = (60, 70, 75, 90)
ROTATIONS = tuple(range(0, 360, 15))

SUPERSAMPLE = 2  # 2x area-averaged is smooth enough and half the cost of 3x
_LIGHT_DIR = (-0.6, -0.8)  # image x, y towards the light: it sits up-left
_ALPHA_IN_BOX = 0.25  # coverage from which a pixel counts as pill for the bbox
_POLY_SIDES = {"삼각형": 3, "오각형": 5, "육각형": 6, "팔각형": 8, "마름모형": 4}
_TWO_LINE_SHAPES = {"원형", "사각형", "오각형", "육각형", "팔각형", "마름모형", "삼각형", "반원형"}

Box = tuple[int, int, int, int]  # x, y, w, h


@dataclass(frozen=True)
class Shot:
    """The conditions of one photo; the indices are the fields of the AIHub file name."""

    width: int
    height: int
    background: int  # index into BACKGROUNDS
    light: int  # index into LIGHTS
    side: int  # 0 front (print_front, line_front), 1 back
    elevation: int  # camera elevation in degrees, one of ELEVATIONS
    rotation: int  # turntable angle in degrees, one of ROTATIONS


@dataclass
class _Sprite:
    """One pill at final size on a padded patch, ready to composite."""

    alpha: np.ndarray  # (h, w) coverage 0..1
    rgb: np.ndarray  # (h, w, 3) shaded colour, 0..255
    shadow: np.ndarray  # (h, w) shadow strength 0..1
    box: tuple[int, int, int, int]  # tight x0, y0, x1, y1 (exclusive) within the patch


def render_photo(drugs: Sequence[Drug], shot: Shot,
                 rng: np.random.Generator) -> tuple[Image.Image, list[Box]]:
    """Draw ``drugs`` (one for a single photo, several for a combination) into one photo.

    Returns the RGB image and one ``(x, y, w, h)`` integer box per drug, in the same order:
    the tight box of the pixels the pill covers at least a quarter of, inside the image.
    """
    canvas = _background(shot, rng)
    spread = 0.0 if len(drugs) == 1 else 180.0  # loose pills on a table lie any way round
    # A slightly soft lens. Only pills have edges to soften, so blur them, not the photo.
    lens = float(rng.uniform(0.35, 0.9)) * shot.width / 976
    for attempt in range(6):
        scale = float(rng.uniform(0.92, 1.08)) * 0.88**attempt
        sprites = [_pill_sprite(d, shot, rng, scale=scale, lens=lens,
                                extra_angle=float(rng.uniform(-spread, spread)))
                   for d in drugs]
        origins = _place(sprites, shot, rng)
        if origins is not None:
            break
    else:
        raise RuntimeError(f"could not place {len(drugs)} pills in a {shot.width}x{shot.height} "
                           "photo without overlap")
    for sprite, (x, y) in zip(sprites, origins, strict=True):  # shadows first: never on a pill
        patch = canvas[y:y + sprite.alpha.shape[0], x:x + sprite.alpha.shape[1]]
        patch *= 1.0 - sprite.shadow[..., None]
    boxes = [_composite(canvas, sprite, x, y) for sprite, (x, y) in zip(sprites, origins,
                                                                        strict=True)]
    return _finish(canvas, shot, rng), boxes


def _background(shot: Shot, rng: np.random.Generator) -> np.ndarray:
    """A float32 (H, W, 3) table: base colour, soft gradient, vignette and mild texture.

    Built at a quarter of the size and upscaled once: all of it is smooth, and one resize
    is much cheaper than full-size arithmetic.
    """
    w, h = shot.width, shot.height
    lw, lh = max(8, w // 4), max(8, h // 4)
    yy, xx = np.mgrid[-1:1:lh * 1j, -1:1:lw * 1j].astype(np.float32)
    base = np.array(_BACKGROUND_RGB[shot.background], np.float32)
    # Mostly a brightness change; only a faint tint, so grey stays grey.
    base *= float(rng.uniform(0.94, 1.06)) + rng.normal(0.0, 0.008, 3).astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    ramp = (xx * math.cos(theta) + yy * math.sin(theta)) * rng.uniform(0.02, 0.07)
    cx, cy = rng.uniform(-0.2, 0.2, 2)
    vignette = 1.0 - rng.uniform(0.06, 0.16) * ((xx - cx) ** 2 + (yy - cy) ** 2) / 2
    blotch = _smooth_noise(rng, (lh, lw), lw / 10) * 0.012
    grain = rng.normal(0.0, rng.uniform(0.006, 0.012), (lh, lw)).astype(np.float32)
    low = base * ((1.0 + ramp + blotch + grain) * vignette)[..., None]
    img = Image.fromarray(np.clip(low, 0, 255).astype(np.uint8))
    return np.asarray(img.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], radius: float) -> np.ndarray:
    noise = rng.normal(0.0, 1.0, shape).astype(np.float32)
    img = Image.fromarray(np.clip(noise * 40 + 128, 0, 255).astype(np.uint8))
    smooth = np.asarray(img.filter(ImageFilter.GaussianBlur(radius)), np.float32) - 128.0
    return smooth / max(1e-3, float(np.abs(smooth).max()))


def _pill_size(drug: Drug, shot: Shot, scale: float) -> tuple[float, float]:
    """Long and short axis in pixels: 15-25% of the photo width, growing with the real size."""
    long_mm = float(drug.fields["leng_long"])
    frac = min(0.25, max(0.15, 0.15 + 0.10 * (long_mm - 6.0) / 14.0))
    long_px = shot.width * frac * scale
    short_px = long_px * float(drug.fields["leng_short"]) / long_mm
    return long_px, short_px


def _pill_sprite(drug: Drug, shot: Shot, rng: np.random.Generator, *, scale: float,
                 extra_angle: float, lens: float) -> _Sprite:
    long_px, short_px = _pill_size(drug, shot, scale)
    layers = _draw_layers(drug, shot.side, long_px, short_px)
    angle = shot.rotation + extra_angle + float(rng.uniform(-6.0, 6.0))
    rotated = layers.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    # A camera looking down at less than 90 degrees foreshortens the pill vertically.
    squash = math.sin(math.radians(shot.elevation))
    size = (max(1, round(rotated.width / SUPERSAMPLE)),
            max(1, round(rotated.height / SUPERSAMPLE * squash)))
    small_img = rotated.resize(size, Image.Resampling.BOX)
    # The lens softens outline, seam and imprint alike: one blur of the three layers.
    small_img = small_img.filter(ImageFilter.GaussianBlur(lens))
    small = np.asarray(small_img, np.float32) / 255.0
    pad = math.ceil(0.05 * long_px + 0.3 * short_px) + 2  # room for the shadow
    small = np.pad(small, ((pad, pad), (pad, pad), (0, 0)))
    alpha, half, mark = small[..., 0], small[..., 1], small[..., 2]
    # One blur serves twice: as the height map for shading and as the soft shadow.
    height = _blur(alpha, short_px * (0.22 if drug.is_capsule else 0.1))
    rgb = _shade(drug, (alpha, height, half, mark), short_px, rng)
    shadow = _shadow(height, short_px, rng)
    ys, xs = np.nonzero(alpha >= _ALPHA_IN_BOX)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return _Sprite(alpha=alpha, rgb=rgb, shadow=shadow, box=box)


def _draw_layers(drug: Drug, side: int, long_px: float, short_px: float) -> Image.Image:
    """The unrotated pill at SUPERSAMPLE: R = outline mask, G = capsule body half, B = marks."""
    ss = SUPERSAMPLE
    pl, ps, margin = long_px * ss, short_px * ss, 2 * ss
    size = (math.ceil(pl) + 2 * margin, math.ceil(ps) + 2 * margin)
    box = (margin, margin, margin + pl, margin + ps)
    mask = _outline(drug, size, box, ps)
    half = Image.new("L", size, 0)
    if drug.is_capsule:
        ImageDraw.Draw(half).rectangle((box[0] + pl * 0.5, 0, size[0], size[1]), fill=255)
    marks = _marks(drug, side, size, box)
    marks = ImageChops.multiply(marks, mask)  # score lines stop at the pill's edge
    return Image.merge("RGB", (mask, half, marks))


def _outline(drug: Drug, size: tuple[int, int], box: tuple[float, ...], ps: float) -> Image.Image:
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    x0, y0, x1, y1 = box
    shape = drug.shape
    if drug.is_capsule:
        draw.rounded_rectangle(box, radius=ps * 0.5, fill=255)
    elif shape == "장방형":
        draw.rounded_rectangle(box, radius=ps * 0.42, fill=255)
    elif shape == "사각형":
        draw.rounded_rectangle(box, radius=ps * 0.18, fill=255)
    elif shape == "반원형":
        # A half disc, flat side down: the top half of an ellipse twice as tall as the box.
        draw.pieslice((x0, y0, x1, y1 + (y1 - y0)), 180, 360, fill=255)
    elif shape in _POLY_SIDES:
        draw.polygon(_polygon(_POLY_SIDES[shape], box), fill=255)
        # Real tablets have rounded corners: blur and re-threshold the sharp polygon.
        mask = mask.filter(ImageFilter.GaussianBlur(ps * 0.06)).point(
            lambda v: 255 if v >= 128 else 0)
    else:  # 원형, 타원형 and anything unknown
        draw.ellipse(box, fill=255)
    return mask


def _polygon(sides: int, box: tuple[float, ...]) -> list[tuple[float, float]]:
    """A regular polygon (a rhombus for 4 sides) pointing up, stretched to fill ``box``."""
    x0, y0, x1, y1 = box
    angles = [-math.pi / 2 + 2 * math.pi * k / sides for k in range(sides)]
    if sides == 6:  # flat top and bottom, like real hexagonal tablets
        angles = [a + math.pi / 6 + math.pi / 2 for a in angles]
    px = [math.cos(a) for a in angles]
    py = [math.sin(a) for a in angles]
    sx = (x1 - x0) / (max(px) - min(px))
    sy = (y1 - y0) / (max(py) - min(py))
    return [(x0 + (u - min(px)) * sx, y0 + (v - min(py)) * sy) for u, v in zip(px, py,
                                                                               strict=True)]


def _marks(drug: Drug, side: int, size: tuple[int, int], box: tuple[float, ...]) -> Image.Image:
    """Imprint text and score lines of the visible face, white on black."""
    layer = Image.new("L", size, 0)
    draw = ImageDraw.Draw(layer)
    face = "front" if side == 0 else "back"
    text = str(drug.fields[f"print_{face}"]).strip()
    line = str(drug.fields[f"line_{face}"])
    x0, y0, x1, y1 = box
    pl, ps = x1 - x0, y1 - y0
    cx, cy = (x0 + x1) / 2, _text_centre_y(drug.shape, y0, ps)
    if line:
        width = max(SUPERSAMPLE, round(ps * 0.035))
        draw.line((cx, y0, cx, y1), fill=255, width=width)
        if line == "십자분할선":
            draw.line((x0, (y0 + y1) / 2, x1, (y0 + y1) / 2), fill=255, width=width)
    if not text:
        return layer
    parts = text.split(" ", 1)
    if line or drug.is_capsule:
        # Split around the score line, or one part on each capsule half (a lone word on the cap).
        left, right = [*parts, ""][:2]
        for part, px in ((left, cx - pl * 0.24), (right, cx + pl * 0.24)):
            if part:
                _text(draw, [part], (px, cy), pl * 0.3, ps * 0.42)
    elif drug.shape in _TWO_LINE_SHAPES:
        narrow = drug.shape in ("삼각형", "마름모형")  # little room away from the centre
        w_frac, h_frac = (0.42, 0.4) if narrow else (0.56, 0.48)
        _text(draw, parts, (cx, cy), pl * w_frac, ps * h_frac)
    else:
        _text(draw, [text], (cx, cy), pl * 0.62, ps * 0.34)
    return layer


def _text_centre_y(shape: str, y0: float, ps: float) -> float:
    # Triangles and half discs carry their text low, where the face is widest.
    if shape == "삼각형":
        return y0 + ps * 0.62
    if shape == "반원형":
        return y0 + ps * 0.6
    return y0 + ps * 0.5


def _text(draw: ImageDraw.ImageDraw, lines: list[str], centre: tuple[float, float],
          max_w: float, max_h: float) -> None:
    """Centre ``lines`` on ``centre``, as large as fits ``max_w`` x ``max_h``, in a bold stroke."""
    cx, cy = centre
    ref = 100
    font = _font(ref)
    widths, heights = [], []
    for text in lines:
        x0, y0, x1, y1 = font.getbbox(text, anchor="mm", stroke_width=ref // 14)
        widths.append(x1 - x0)
        heights.append(y1 - y0)
    gap = 0.25
    total_h = sum(heights) * (1 + gap * (len(lines) - 1) / len(lines))
    size = max(4, int(ref * min(max_w / max(widths), max_h / total_h)))
    font = _font(size)
    step = size * (max(heights) / ref) * (1 + gap)
    for i, text in enumerate(lines):
        y = cy + (i - (len(lines) - 1) / 2) * step
        draw.text((cx, y), text, fill=255, font=font, anchor="mm",
                  stroke_width=max(1, size // 14), stroke_fill=255)


@lru_cache(maxsize=128)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow >= 10.1 bundles a scalable font: nothing to download, same glyphs everywhere.
    return ImageFont.load_default(size=size)


def _shade(drug: Drug, layers: tuple[np.ndarray, ...], short_px: float,
           rng: np.random.Generator) -> np.ndarray:
    """Colour the pill: 3D-ish diffuse light, rim, highlight, then engraved or printed marks.

    ``layers`` are alpha, height (blurred alpha), capsule body half and marks, all (h, w).
    """
    alpha, height, half, mark = layers
    c1 = np.array(drug.rgb, np.float32)
    c2 = np.array(drug.rgb2, np.float32)
    base = c1 + (c2 - c1) * half[..., None]
    gy, gx = np.gradient(height)
    facing = -(gx * _LIGHT_DIR[0] + gy * _LIGHT_DIR[1])
    facing /= max(1e-6, float(np.abs(facing[alpha > 0.5]).max(initial=0.0)))
    rim = np.clip(height * 1.7, 0.0, 1.0)
    # A flat top near full brightness (white pills must stand out on the light grey table).
    light = (0.93 + 0.14 * facing) * (0.75 + 0.25 * rim)
    gloss = float(rng.uniform(0.6, 1.0)) * (1.4 if drug.is_capsule else 1.0)
    rgb = base * light[..., None] + (np.clip(facing, 0, 1) ** 3 * 55.0 * gloss)[..., None]
    if drug.is_capsule:
        seam = np.hypot(*np.gradient(_blur(half, 0.6)))
        rgb *= (1.0 - np.clip(seam * 2.0, 0, 0.35))[..., None]
        # Printed ink: black on light halves, white on dark ones, as on real capsules.
        dark = (base @ np.array([0.3, 0.59, 0.11], np.float32)) < 100
        ink = np.where(dark[..., None], np.float32(236), np.float32(30))
        rgb += (ink - rgb) * (mark * 0.9)[..., None]
    else:
        rgb = _engrave(rgb, mark, short_px)
    return np.clip(rgb, 0.0, 255.0)


def _engrave(rgb: np.ndarray, mark: np.ndarray, short_px: float) -> np.ndarray:
    """A debossed mark: darker inside, a shadowed wall towards the light, a lit wall away."""
    d = max(1, round(short_px / 70))
    before = np.zeros_like(mark)
    before[d:, d:] = mark[:-d, :-d]  # the mark as seen from one step towards the light
    edge = mark - before  # +1 on the wall in shadow, -1 on the wall in light
    rgb = rgb * (1.0 - 0.42 * mark)[..., None]
    return rgb - (edge * 45.0)[..., None]


def _shadow(height: np.ndarray, short_px: float, rng: np.random.Generator) -> np.ndarray:
    """A soft contact shadow (the blurred outline), cast down-right, away from the light."""
    dx = max(1, round(short_px * 0.05))
    dy = max(1, round(short_px * 0.07))
    shadow = np.zeros_like(height)
    shadow[dy:, dx:] = height[:-dy, :-dx]
    shadow *= float(rng.uniform(0.35, 0.55))
    return shadow


def _blur(a: np.ndarray, radius: float) -> np.ndarray:
    img = Image.fromarray(np.clip(a * 255.0, 0, 255).astype(np.uint8))
    return np.asarray(img.filter(ImageFilter.GaussianBlur(radius)), np.float32) / 255.0


def _place(sprites: list[_Sprite], shot: Shot,
           rng: np.random.Generator) -> list[tuple[int, int]] | None:
    """Patch origins: a single pill near the centre, several scattered without overlap."""
    w, h = shot.width, shot.height
    if len(sprites) == 1:
        sh, sw = sprites[0].alpha.shape
        x = int(np.clip((w - sw) / 2 + rng.normal(0, 0.05 * w), 0, w - sw))
        y = int(np.clip((h - sh) / 2 + rng.normal(0, 0.05 * h), 0, h - sh))
        return [(x, y)] if sw <= w and sh <= h else None
    gap = 0.025 * w
    taken: list[tuple[float, float, float, float]] = []
    origins: list[tuple[int, int]] = []
    for sprite in sprites:
        sh, sw = sprite.alpha.shape
        if sw > w or sh > h:
            return None
        for _ in range(200):
            # Pills cluster in the middle of the frame, as on the AIHub turntable.
            x = int(rng.uniform(0.1 * (w - sw), 0.9 * (w - sw)))
            y = int(rng.uniform(0.1 * (h - sh), 0.9 * (h - sh)))
            bx0, by0, bx1, by1 = sprite.box
            rect = (x + bx0 - gap, y + by0 - gap, x + bx1 + gap, y + by1 + gap)
            if not any(_overlap(rect, other) for other in taken):
                taken.append(rect)
                origins.append((x, y))
                break
        else:
            return None
    return origins


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _composite(canvas: np.ndarray, sprite: _Sprite, x: int, y: int) -> Box:
    sh, sw = sprite.alpha.shape
    patch = canvas[y:y + sh, x:x + sw]
    a = sprite.alpha[..., None]
    patch *= 1.0 - a
    patch += sprite.rgb * a
    x0, y0, x1, y1 = sprite.box
    return (x + x0, y + y0, x1 - x0, y1 - y0)


def _finish(canvas: np.ndarray, shot: Shot, rng: np.random.Generator) -> Image.Image:
    """Light colour and brightness, then sensor noise (luminance, as in a phone camera)."""
    gain = np.array(_LIGHT_GAIN[shot.light], np.float32) * float(rng.uniform(0.9, 1.07))
    canvas *= gain
    sigma = float(rng.uniform(1.2, 2.8))
    noise = rng.standard_normal((shot.height, shot.width), dtype=np.float32)
    noise *= sigma
    canvas += noise[..., None]
    np.clip(canvas, 0, 255, out=canvas)
    return Image.fromarray(canvas.astype(np.uint8))
