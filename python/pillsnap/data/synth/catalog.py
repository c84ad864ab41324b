"""The fake drug catalogue behind the synthetic AIHub data set.

Each drug carries the metadata fields an AIHub label JSON holds in ``images[0]`` (K-code,
EDI codes, Korean and English names, company, shape, colours, imprints, score lines) plus
the few numbers the renderer needs (its RGB colours). Drugs come in look-alike groups of
3-4 that share shape, size and colour and differ only by imprint text and/or score line,
the way strengths of one product do in the real data, so a classifier has to read imprints.

Built by ``python -m pillsnap.data synth --out DIR ...`` through
:func:`pillsnap.data.synth.generate`; use :func:`build_catalog` directly to inspect one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

# Stream tag mixed into the seed so the catalogue never shares random numbers with images.
_CATALOG_STREAM = 0xCA7A
# K-code numbers are drawn from this range so codes are spread out like the real ones.
_K_CODE_SPAN = 50_000
MAX_CLASSES = 10_000

# Colour class names as the real labels spell them, with the RGB the renderer paints.
# No black: the dark background would hide it, and AIHub rarely has black tablets.
COLOURS: dict[str, tuple[int, int, int]] = {
    "하양": (246, 245, 240),
    "노랑": (240, 212, 96),
    "주황": (238, 148, 66),
    "분홍": (238, 170, 186),
    "빨강": (200, 56, 52),
    "갈색": (156, 100, 62),
    "연두": (180, 214, 116),
    "초록": (70, 152, 88),
    "청록": (60, 164, 164),
    "파랑": (76, 118, 206),
    "남색": (58, 70, 150),
    "자주": (156, 56, 116),
    "보라": (150, 118, 200),
    "회색": (150, 150, 154),
}
_COLOUR_WEIGHTS = {"하양": 10, "노랑": 3, "분홍": 3, "주황": 2, "빨강": 1, "갈색": 1, "연두": 1,
                   "초록": 1, "청록": 1, "파랑": 1, "남색": 1, "자주": 1, "보라": 1, "회색": 1}

CAPSULE_FORM = "경질캡슐제"
_CHART_COLOUR = {"하양": "흰"}  # the chart text says 흰색, the colour class 하양
_TABLET_FORMS = ("필름코팅정", "나정", "당의정", "서방성필름코팅정", "장용성필름코팅정")

# (drug_shape, weight, leng_long range in mm, short/long ratio range); "capsule" is drawn
# as drug_shape 장방형 with form 경질캡슐제, as in the real labels.
_SHAPES: tuple[tuple[str, float, tuple[float, float], tuple[float, float]], ...] = (
    ("원형", 34, (5.5, 11.0), (1.0, 1.0)),
    ("타원형", 14, (9.0, 16.0), (0.48, 0.66)),
    ("장방형", 18, (11.0, 19.0), (0.38, 0.5)),
    ("capsule", 12, (14.0, 22.0), (0.34, 0.42)),
    ("삼각형", 4, (7.0, 10.0), (0.87, 0.87)),
    ("사각형", 4, (7.0, 10.0), (0.7, 1.0)),
    ("오각형", 3, (7.0, 11.0), (0.95, 0.95)),
    ("육각형", 3, (7.0, 11.0), (0.87, 0.87)),
    ("팔각형", 3, (7.0, 11.0), (1.0, 1.0)),
    ("마름모형", 3, (8.0, 13.0), (0.6, 0.8)),
    ("반원형", 2, (8.0, 12.0), (0.5, 0.5)),
)

_SYLLABLES = (
    ("아", "a"), ("벤", "ben"), ("카", "ca"), ("디", "di"), ("로", "ro"), ("몬", "mon"),
    ("텔", "tel"), ("졸", "zol"), ("린", "rin"), ("타", "ta"), ("세", "se"), ("미", "mi"),
    ("솔", "sol"), ("바", "ba"), ("노", "no"), ("펜", "fen"), ("틴", "tin"), ("렉", "rec"),
    ("코", "co"), ("프", "pre"), ("나", "na"), ("베", "be"), ("실", "sil"), ("다", "da"),
    ("리", "ri"), ("올", "ol"), ("메", "me"), ("가", "ga"), ("루", "ru"), ("하", "ha"),
)
_COMPANIES = (
    ("한빛제약(주)", "Hanbit Pharm. Co., Ltd."), ("대성약품(주)", "Daesung Pharm. Co., Ltd."),
    ("새봄제약(주)", "Saebom Pharm. Co., Ltd."), ("청우바이오(주)", "Cheongwoo Bio Co., Ltd."),
    ("동명약품(주)", "Dongmyeong Pharm. Co., Ltd."), ("미래팜(주)", "Mirae Pharm Co., Ltd."),
    ("서진제약(주)", "Seojin Pharm. Co., Ltd."), ("가온제약(주)", "Gaon Pharm. Co., Ltd."),
    ("하람약품(주)", "Haram Pharm. Co., Ltd."), ("누리바이오팜(주)", "Nuri Biopharm Co., Ltd."),
    ("태림제약(주)", "Taerim Pharm. Co., Ltd."), ("온정약품(주)", "Onjeong Pharm. Co., Ltd."),
)
_MATERIALS = (
    ("아세트아미노펜", "Acetaminophen"), ("암로디핀베실산염", "Amlodipine Besylate"),
    ("로수바스타틴칼슘", "Rosuvastatin Calcium"), ("메트포르민염산염", "Metformin HCl"),
    ("록소프로펜나트륨수화물", "Loxoprofen Sodium Hydrate"), ("레바미피드", "Rebamipide"),
    ("세티리진염산염", "Cetirizine HCl"), ("아토르바스타틴칼슘수화물", "Atorvastatin Calcium"),
    ("로사르탄칼륨", "Losartan Potassium"), ("에스오메프라졸마그네슘", "Esomeprazole Magnesium"),
    ("클로피도그렐황산수소염", "Clopidogrel Bisulfate"), ("가바펜틴", "Gabapentin"),
    ("이부프로펜", "Ibuprofen"), ("모사프리드시트르산염", "Mosapride Citrate"),
)
_CLASS_NOS = (
    "[02390]기타의 소화기관용약", "[01140]해열.진통.소염제", "[02140]혈압강하제",
    "[02180]동맥경화용제", "[03960]당뇨병용제", "[01170]정신신경용제", "[02120]부정맥용제",
    "[04490]기타의 알레르기용약", "[02220]진해거담제", "[01120]최면진정제",
)
_STRENGTHS = ((2.5, 5, 10, 20), (5, 10, 20, 40), (12.5, 25, 50, 100), (50, 100, 200, 400),
              (125, 250, 500, 1000), (1, 2, 4, 8))
_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"  # no I/O: real imprints avoid them next to 1/0


@dataclass(frozen=True)
class Drug:
    """One drug (K-code): its AIHub metadata fields plus what the renderer paints."""

    k_code: str
    fields: dict = field(hash=False, compare=True)  # the images[0] metadata of this drug
    group: int  # look-alike group: same shape, size and colour within a group
    rgb: tuple[int, int, int]  # colour of the tablet, or of the capsule's cap half
    rgb2: tuple[int, int, int]  # colour of the capsule's body half (same as rgb for tablets)
    # Position in build order (group by group, before the sort by K-code): held-out drugs are
    # the last ones built, so that a cut through a group leaves known look-alike siblings.
    order: int = 0

    @property
    def shape(self) -> str:
        return str(self.fields["drug_shape"])

    @property
    def is_capsule(self) -> bool:
        return self.fields["form_code_name"] == CAPSULE_FORM


@dataclass(frozen=True)
class _Look:
    """What a look-alike group shares."""

    shape: str
    form: str
    colour1: str
    colour2: str
    leng_long: float
    leng_short: float
    thick: float
    rgb: tuple[int, int, int]
    rgb2: tuple[int, int, int]


def build_catalog(classes: int, seed: int, *, lookalikes: bool = True) -> list[Drug]:
    """Return ``classes`` drugs sorted by K-code, deterministic in ``(classes, seed)``.

    With ``lookalikes`` drugs come in groups of 3-4 sharing shape and colour; without, every
    drug has a look of its own (groups of one). ``Drug.order`` keeps the build order (group
    by group) that the sort by K-code hides.
    """
    if not 1 <= classes <= MAX_CLASSES:
        raise ValueError(f"classes must be in 1..{MAX_CLASSES}, got {classes}")
    rng = np.random.default_rng([_CATALOG_STREAM, seed])
    numbers = rng.choice(np.arange(1, _K_CODE_SPAN), size=classes, replace=False)
    used_imprints: set[str] = set()
    used_names: set[str] = set()
    drugs: list[Drug] = []
    sizes = _group_sizes(classes, rng) if lookalikes else [1] * classes
    for group, size in enumerate(sizes):
        look = _draw_look(rng)
        family = _draw_family(rng, used_names, used_imprints, look)
        for member in range(size):
            number = int(numbers[len(drugs)])
            drugs.append(_make_drug(number, group, member, order=len(drugs), look=look,
                                    family=family, rng=rng))
    _add_quirks(drugs, rng)
    drugs.sort(key=lambda d: d.k_code)
    logger.debug("built a catalogue of %d drugs in %d look-alike groups", classes,
                 1 + max(d.group for d in drugs))
    return drugs


def _group_sizes(classes: int, rng: np.random.Generator) -> list[int]:
    """Split the classes into look-alike groups of 3-4 (smaller only when classes < 3)."""
    sizes: list[int] = []
    remaining = classes
    while remaining > 0:
        if remaining <= 4:
            take = remaining
        elif remaining in (5, 6):
            take = 3  # 5 leaves a pair: the only way to split it
        else:
            take = int(rng.integers(3, 5))
        sizes.append(take)
        remaining -= take
    return sizes


def _draw_look(rng: np.random.Generator) -> _Look:
    weights = np.array([s[1] for s in _SHAPES], dtype=float)
    shape, _, (lo, hi), (rlo, rhi) = _SHAPES[rng.choice(len(_SHAPES), p=weights / weights.sum())]
    names = list(_COLOUR_WEIGHTS)
    cw = np.array([_COLOUR_WEIGHTS[n] for n in names], dtype=float)
    colour1 = names[rng.choice(len(names), p=cw / cw.sum())]
    leng_long = round(float(rng.uniform(lo, hi)), 1)
    leng_short = round(leng_long * float(rng.uniform(rlo, rhi)), 1)
    if shape == "capsule":
        colour2 = names[rng.choice(len(names))]
        shape, form = "장방형", CAPSULE_FORM
    else:
        colour2, form = "", _TABLET_FORMS[rng.choice(len(_TABLET_FORMS), p=[.5, .2, .1, .1, .1])]
    rgb = _jitter_rgb(COLOURS[colour1], rng)
    rgb2 = _jitter_rgb(COLOURS[colour2], rng) if colour2 else rgb
    thick = round(float(rng.uniform(2.5, 6.0)), 1)
    return _Look(shape, form, colour1, colour2, leng_long, leng_short, thick, rgb, rgb2)


def _jitter_rgb(rgb: tuple[int, int, int], rng: np.random.Generator) -> tuple[int, int, int]:
    # Different groups of one colour class differ a little, as real batches do.
    r, g, b = (int(np.clip(c + rng.integers(-10, 11), 0, 255)) for c in rgb)
    return (r, g, b)


@dataclass(frozen=True)
class _Family:
    """One product in several strengths: names, company, imprint scheme."""

    name_ko: str
    name_en: str
    company: tuple[str, str]
    material: tuple[str, str]
    class_no: str
    etc_otc: str
    strengths: tuple[float, ...]
    imprints: tuple[str, ...]
    prints_back: tuple[str, ...]
    lines_back: tuple[str, ...]


def _draw_family(rng: np.random.Generator, used_names: set[str], used_imprints: set[str],
                 look: _Look) -> _Family:
    name_ko, name_en = _unique_name(rng, used_names)
    company = _COMPANIES[rng.choice(len(_COMPANIES))]
    strengths = _STRENGTHS[rng.choice(len(_STRENGTHS))]
    imprints = _unique_imprints(rng, used_imprints, strengths)
    capsule = look.form == CAPSULE_FORM
    line_choice = "none" if capsule else ("none", "all", "some")[rng.choice(3, p=[.5, .25, .25])]
    line = "십자분할선" if rng.random() < 0.15 else "분할선"
    lines_back = tuple(
        line if line_choice == "all" or (line_choice == "some" and i % 2 == 1) else ""
        for i in range(4)
    )
    # Both faces of look-alikes must differ, or half the photos (the back sides) could not
    # be classified at all: the back carries the strength, as many real tablets do, after
    # the company initials on some products.
    initials = "".join(w[0] for w in company[1].split()[:2]).upper()
    prints_back = _unique_backs(rng, used_imprints, initials, strengths)
    return _Family(
        name_ko=name_ko, name_en=name_en, company=company,
        material=_MATERIALS[rng.choice(len(_MATERIALS))],
        class_no=_CLASS_NOS[rng.choice(len(_CLASS_NOS))],
        etc_otc="전문의약품" if rng.random() < 0.7 else "일반의약품",
        strengths=strengths, imprints=imprints, prints_back=prints_back, lines_back=lines_back,
    )


def _unique_name(rng: np.random.Generator, used: set[str]) -> tuple[str, str]:
    while True:
        parts = [_SYLLABLES[i] for i in rng.choice(len(_SYLLABLES), size=int(rng.integers(2, 4)))]
        ko = "".join(p[0] for p in parts)
        if ko not in used:
            used.add(ko)
            return ko, "".join(p[1] for p in parts).capitalize()


def _unique_imprints(rng: np.random.Generator, used: set[str],
                     strengths: tuple[float, ...]) -> tuple[str, ...]:
    """Imprints of one family: same letters, differing in the number or the last letter."""
    while True:
        style = rng.choice(3, p=[0.55, 0.25, 0.2])
        letters = "".join(rng.choice(list(_LETTERS), size=int(rng.integers(2, 4))))
        if style == 0:  # "DW 10": the strength after a company/product code
            cand = tuple(f"{letters} {_fmt_strength(s)}" for s in strengths)
        elif style == 1:  # "T5": a code glued to the strength
            cand = tuple(f"{letters[0]}{_fmt_strength(s)}" for s in strengths)
        else:  # "HXA", "HXB": only the last letter tells them apart
            tails = rng.choice(list(_LETTERS), size=len(strengths), replace=False)
            cand = tuple(f"{letters[:2]}{t}" for t in tails)
        if not used.intersection(cand):
            used.update(cand)
            return cand


def _unique_backs(rng: np.random.Generator, used: set[str], initials: str,
                  strengths: tuple[float, ...]) -> tuple[str, ...]:
    """Back imprints of one family: a mark (company initials, or a code) and the strength."""
    prefix = initials
    while True:
        cand = tuple(f"{prefix} {_fmt_strength(s)}" for s in strengths)
        if not used.intersection(cand):
            used.update(cand)
            return cand
        prefix = "".join(rng.choice(list(_LETTERS), size=2))


def _fmt_strength(value: float) -> str:
    return f"{value:g}"


def _make_drug(number: int, group: int, member: int, *, order: int, look: _Look,
               family: _Family, rng: np.random.Generator) -> Drug:
    k_code = f"K-{number:06d}"
    strength = _fmt_strength(family.strengths[member])
    capsule = look.form == CAPSULE_FORM
    suffix_ko, suffix_en = ("캡슐", "Cap.") if capsule else ("정", "Tab.")
    year = int(rng.integers(1995, 2021))
    permit = f"{year}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"
    regist = f"{min(year + int(rng.integers(0, 4)), 2022)}{permit[4:]}"
    fields = {
        "dl_idx": str(number - 1),
        "dl_mapping_code": k_code,
        "dl_name": f"{family.name_ko}{suffix_ko} {strength}mg",
        "dl_name_en": f"{family.name_en} {suffix_en} {strength}mg",
        "img_key": "",
        "dl_material": family.material[0],
        "dl_material_en": family.material[1],
        "dl_custom_shape": "경질캡슐" if capsule else "정제",
        "dl_company": family.company[0],
        "dl_company_en": family.company[1],
        "di_company_mf": "",
        "di_company_mf_en": "",
        "item_seq": year * 100_000 + int(rng.integers(0, 100_000)),
        "di_item_permit_date": permit,
        "di_class_no": family.class_no,
        "di_etc_otc_code": family.etc_otc,
        "di_edi_code": f"6{int(rng.integers(10_000_000, 100_000_000))}",
        "chart": _chart(look),
        "drug_shape": look.shape,
        "thick": look.thick,
        "leng_long": look.leng_long,
        "leng_short": look.leng_short,
        "print_front": family.imprints[member],
        "print_back": family.prints_back[member],
        "color_class1": look.colour1,
        "color_class2": look.colour2,
        "line_front": "",
        "line_back": family.lines_back[member],
        "img_regist_ts": regist,
        "form_code_name": look.form,
        "mark_code_front_anal": "",
        "mark_code_back_anal": "",
        "mark_code_front_img": "",
        "mark_code_back_img": "",
        "mark_code_front": "",
        "mark_code_back": "",
        "change_date": regist,
    }
    return Drug(k_code=k_code, fields=fields, group=group, rgb=look.rgb, rgb2=look.rgb2,
                order=order)


def _chart(look: _Look) -> str:
    """The one-line appearance text of the label, e.g. "흰색의 원형 필름코팅정"."""
    c1, c2 = (_CHART_COLOUR.get(c, c) for c in (look.colour1, look.colour2))
    if look.form == CAPSULE_FORM:
        return f"상부는 {c1}색, 하부는 {c2}색의 경질캡슐"
    return f"{c1}색의 {look.shape} {look.form}"


def _add_quirks(drugs: list[Drug], rng: np.random.Generator) -> None:
    """The real labels' quirks: some dl_idx off the K-code, two EDI codes, empty EDI codes."""
    n = len(drugs)
    order = rng.permutation(n)
    n_double, n_empty = round(n * 0.2), round(n * 0.1)
    for i in order[:n_double]:
        f = drugs[i].fields
        f["di_edi_code"] = f"{f['di_edi_code']},A{int(rng.integers(0, 100_000_000)):08d}"
    for i in order[n_double:n_double + n_empty]:
        drugs[i].fields["di_edi_code"] = ""
    n_odd = max(1, round(n / 8)) if n >= 2 else 0
    for i in rng.permutation(n)[:n_odd]:
        f = drugs[i].fields
        f["dl_idx"] = str(int(f["dl_idx"]) + int(rng.integers(2, 5000)))
