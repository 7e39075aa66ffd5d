"""Vehicle families: airplane, car, watercraft.

Frame (the project's): +y up, nose / bonnet / bow towards +z; seen from the front (from +z),
+x points to the viewer's right. Units: airplanes and watercraft are built with fuselage / hull
length 1, cars in metres; everything is normalised afterwards.
"""

from __future__ import annotations

import numpy as np

from svr.data.procedural import primitives as P
from svr.data.procedural.assembly import Assembly

MIN_FRACTION = 0.03  # thinnest member / longest side (survives 32^3 voxelisation)


# ----------------------------------------------------------------------------- airplane


def _wing_section(
    x: float, y: float, z_le: float, chord: float, t: float
) -> list[tuple[float, float, float]]:
    """Five points of a blunt aerofoil-like section in the (y, z) plane at span position x."""
    return [
        (x, y, z_le),
        (x, y + t / 2, z_le - 0.3 * chord),
        (x, y - t / 2, z_le - 0.3 * chord),
        (x, y + 0.2 * t, z_le - chord),
        (x, y - 0.2 * t, z_le - chord),
    ]


def _surface(root: list, tip: list) -> P.Manifold:
    return P.hull_points(np.array(root + tip, dtype=np.float64))


def _fin_section(y: float, z_le: float, chord: float, t: float, x: float = 0.0) -> list:
    """Vertical-surface section: the aerofoil lies in the (x, z) plane at height y."""
    return [
        (x, y, z_le),
        (x + t / 2, y, z_le - 0.3 * chord),
        (x - t / 2, y, z_le - 0.3 * chord),
        (x + 0.2 * t, y, z_le - chord),
        (x - 0.2 * t, y, z_le - chord),
    ]


def airplane(rng: np.random.Generator) -> Assembly:
    """Airplanes: swept, straight or delta wings; low / mid / high wing; 0, 2 or 4 engines
    (or a nose propeller, or rear-mounted engines); conventional, T- or twin tail."""
    a = Assembly("airplane")
    planform = a.choose(rng, ["swept", "straight", "delta"], p=[0.5, 0.3, 0.2])
    position = a.choose(rng, ["low-wing", "mid-wing", "high-wing"], p=[0.5, 0.2, 0.3])
    if planform == "swept":
        engines = a.choose(rng, ["2-engines", "4-engines", "rear-engines"], p=[0.5, 0.3, 0.2])
        tail = a.choose(rng, ["conventional", "t-tail", "twin-tail"], p=[0.55, 0.3, 0.15])
        sweep = np.deg2rad(a.uniform(rng, "sweep_deg", 20, 40))
        span = a.uniform(rng, "span", 0.75, 1.25)
        taper = a.uniform(rng, "taper", 0.2, 0.45)
        cr = a.uniform(rng, "root_chord", 0.16, 0.28)
    elif planform == "straight":
        engines = a.choose(rng, ["0-engines", "2-engines"], p=[0.5, 0.5])
        tail = a.choose(rng, ["conventional", "t-tail", "twin-tail"], p=[0.5, 0.3, 0.2])
        sweep = np.deg2rad(a.uniform(rng, "sweep_deg", 0, 8))
        span = a.uniform(rng, "span", 0.9, 1.4)
        taper = a.uniform(rng, "taper", 0.5, 1.0)
        cr = a.uniform(rng, "root_chord", 0.12, 0.2)
    else:
        engines = a.choose(rng, ["0-engines"])
        tail = a.choose(rng, ["fin-only", "twin-tail"], p=[0.7, 0.3])
        sweep = np.deg2rad(a.uniform(rng, "sweep_deg", 45, 62))
        span = a.uniform(rng, "span", 0.5, 0.75)
        taper = a.uniform(rng, "taper", 0.05, 0.2)
        cr = a.uniform(rng, "root_chord", 0.35, 0.55)
    FL = 1.0
    R = a.uniform(rng, "fuselage_radius", 0.035, 0.07)
    longest = max(FL, span)
    tmin = MIN_FRACTION * longest
    nl = a.uniform(rng, "nose_length", 1.5, 3.0) * R
    tl = a.uniform(rng, "tail_cone_length", 3.0, 5.0) * R
    z_n, z_t = FL / 2 - nl, -FL / 2 + tl

    # fuselage: nose ellipsoid, cylinder, upswept tail cone
    a.add("fuselage", P.cylinder((0, 0, z_t), (0, 0, z_n), R, R, 24))
    a.add("fuselage", P.ellipsoid((0, -0.1 * R, z_n), (R, R * 0.95, nl), 20))
    tail_tip = (0.0, 0.55 * R, -FL / 2 + 0.2 * R)
    a.add(
        "fuselage",
        P.Manifold.batch_hull(
            [
                P.cylinder((0, 0, z_t - 0.01), (0, 0, z_t + 0.01), R, R, 24),
                P.sphere(tail_tip, 0.25 * R, 12),
            ]
        ),
    )

    # main wing, one convex half per side (they overlap inside the fuselage)
    wy = {"low-wing": -0.55 * R, "mid-wing": 0.0, "high-wing": 0.7 * R}[position]
    dihedral = np.deg2rad(
        a.uniform(rng, "dihedral_deg", -2, 6)
        if position != "high-wing"
        else a.uniform(rng, "dihedral_deg", -3, 2)
    )
    zw = (
        a.uniform(rng, "wing_position", -0.05, 0.12)
        + cr / 2
        - (0.1 if planform == "delta" else 0.0)
    )
    ct = taper * cr
    t_root = max(0.12 * cr, tmin)
    t_tip = max(0.1 * ct, tmin)
    half = span / 2

    def le_at(x: float) -> tuple[float, float]:
        """(y, z) of the wing's leading edge at span position |x|."""
        return wy + abs(x) * np.tan(dihedral), zw - abs(x) * np.tan(sweep)

    for sx in (-1, 1):
        yt, zt = le_at(half)
        tip_chord = ct if planform != "delta" else max(ct, 0.05)
        # each half starts a little past the centre plane so the halves overlap in volume
        root = _wing_section(-sx * 0.01, wy, zw, cr, t_root)
        tip = _wing_section(sx * half, yt, zt, tip_chord, t_tip)
        a.add("wing", _surface(root, tip))

    # engines
    er = max(a.uniform(rng, "engine_radius", 0.35, 0.55) * R, tmin / 1.5)
    el = a.uniform(rng, "engine_length", 2.5, 4.0) * 2 * er
    if engines in ("2-engines", "4-engines"):
        spots = [0.33] if engines == "2-engines" else [0.28, 0.55]
        for frac in spots:
            for sx in (-1, 1):
                x = sx * frac * half
                y_le, z_le = le_at(x)
                chord_here = cr + (ct - cr) * frac
                ye = y_le - 0.5 * t_root - er * 0.9
                zc = z_le - 0.15 * chord_here
                a.add(
                    "engine",
                    P.cylinder((x, ye, zc - 0.5 * el), (x, ye, zc + 0.5 * el), er * 0.85, er, 16),
                )
                a.add(
                    "pylon",
                    P.box((tmin * 0.8, er * 1.2, el * 0.6), (x, ye + er * 0.7, zc - 0.1 * el)),
                )
                if planform == "straight":
                    a.add(
                        "propeller",
                        P.cylinder(
                            (x, ye, zc + 0.5 * el), (x, ye, zc + 0.5 * el + er), er, er * 0.2, 12
                        ),
                    )
                    blade = a.params.setdefault("prop_radius", float(rng.uniform(2.5, 3.5))) * er
                    a.add(
                        "propeller",
                        P.box((2 * blade, tmin, tmin), (x, ye, zc + 0.5 * el + 0.3 * er)),
                    )
    elif engines == "rear-engines":
        for sx in (-1, 1):
            x = sx * (R + er * 0.9)
            zc = z_t + 0.4 * el
            a.add(
                "engine",
                P.cylinder(
                    (x, 0.35 * R, zc - 0.5 * el), (x, 0.35 * R, zc + 0.5 * el), er * 0.85, er, 16
                ),
            )
            a.add(
                "pylon",
                P.box((er * 2.2, tmin, el * 0.5), (sx * (R * 0.5 + er * 0.5), 0.35 * R, zc)),
            )
    elif planform == "straight":
        # single-engine propeller plane: spinner and two blades at the nose
        blade = a.uniform(rng, "prop_radius", 2.2, 3.2) * R
        a.add(
            "propeller",
            P.cylinder(
                (0, -0.1 * R, FL / 2 - 0.02), (0, -0.1 * R, FL / 2 + 0.6 * R), 0.45 * R, 0.1 * R, 12
            ),
        )
        a.add("propeller", P.box((tmin, 2 * blade, tmin), (0, -0.1 * R, FL / 2 + 0.1 * R)))

    # tail surfaces
    cv = a.uniform(rng, "fin_chord", 0.12, 0.22)
    hv = a.uniform(rng, "fin_height", 0.1, 0.2)
    fin_sweep = np.deg2rad(a.uniform(rng, "fin_sweep_deg", 25, 50))
    tv = max(tmin, 0.1 * cv)
    fin_le_root = -FL / 2 + cv + 0.02
    fin_le_tip = fin_le_root - hv * np.tan(fin_sweep)
    ch = a.uniform(rng, "stab_chord", 0.08, 0.14)
    hs = max(a.uniform(rng, "stab_span_ratio", 0.28, 0.45) * span, 0.2)
    th = max(tmin, 0.1 * ch)
    stab_sweep = min(sweep, np.deg2rad(35)) + 0.1

    def stab(y: float, z_le: float) -> None:
        for sx in (-1, 1):
            root = _wing_section(-sx * 0.01, y, z_le, ch, th)
            tip = _wing_section(
                sx * hs / 2, y + 0.02, z_le - hs / 2 * np.tan(stab_sweep), ch * 0.55, th
            )
            a.add("stabilizer", _surface(root, tip))

    if tail in ("conventional", "t-tail", "fin-only"):
        root = _fin_section(0.4 * R, fin_le_root, cv, tv)
        tip = _fin_section(R + hv, fin_le_tip, cv * 0.6, tv)
        a.add("fin", _surface(root, tip))
        if tail == "conventional":
            stab(0.2 * R, -FL / 2 + ch + 0.025)
        elif tail == "t-tail":
            stab(R + hv - th / 2, fin_le_tip + 0.01)
    else:  # twin fins at the stabiliser tips (or on the delta wing)
        if planform == "delta":
            x_f = 0.35 * half
            y_f, z_le_f = le_at(x_f)
            chord_f = cr + (ct - cr) * 0.35
            z_root = z_le_f - 0.3 * chord_f
            cv = chord_f * 0.6 / 0.8
        else:
            stab(0.2 * R, -FL / 2 + ch + 0.025)
            x_f = 0.85 * hs / 2
            y_f = 0.2 * R
            z_root = -FL / 2 + ch + 0.025 - x_f * np.tan(stab_sweep) + 0.01
        for sx in (-1, 1):
            root = _fin_section(y_f - 0.01, z_root, cv * 0.8, tv, sx * x_f)
            tip = _fin_section(
                y_f + hv * 0.85, z_root - hv * np.tan(fin_sweep), cv * 0.5, tv, sx * x_f
            )
            a.add("fin", _surface(root, tip))
    return a


# ----------------------------------------------------------------------------- car

_CAR_DIMS = {
    # length, roof height, ground clearance, wheel radius, hood fraction, deck fraction
    "sedan": ((4.2, 5.0), (1.35, 1.5), (0.14, 0.18), (0.3, 0.35), (0.26, 0.33), (0.17, 0.24)),
    "hatchback": ((3.6, 4.3), (1.4, 1.55), (0.14, 0.18), (0.29, 0.33), (0.2, 0.27), (0.02, 0.05)),
    "wagon": ((4.5, 5.1), (1.42, 1.55), (0.14, 0.18), (0.3, 0.35), (0.24, 0.3), (0.02, 0.04)),
    "suv": ((4.3, 4.9), (1.65, 1.85), (0.2, 0.28), (0.36, 0.41), (0.2, 0.25), (0.02, 0.04)),
    "pickup": ((4.9, 5.6), (1.7, 1.9), (0.22, 0.28), (0.36, 0.42), (0.23, 0.28), (0.0, 0.0)),
    "van": ((4.5, 5.3), (1.9, 2.2), (0.15, 0.2), (0.31, 0.36), (0.07, 0.15), (0.01, 0.02)),
    "sports": ((4.1, 4.6), (1.1, 1.25), (0.1, 0.13), (0.31, 0.35), (0.3, 0.38), (0.12, 0.2)),
}
_REAR_RAKE = {
    "sedan": (0.9, 1.5),
    "sports": (1.3, 2.0),
    "hatchback": (0.3, 0.6),
    "wagon": (0.1, 0.3),
    "suv": (0.05, 0.25),
    "van": (0.0, 0.1),
}


def _rounded_extrusion(profile: np.ndarray, width: float, bevel: float) -> P.Manifold:
    """A convex side profile (z, y) extruded across x with its side edges bevelled."""
    prof = np.asarray(profile, dtype=np.float64)
    centre = prof.mean(axis=0)
    extent = prof.max(axis=0) - prof.min(axis=0)
    shrunk = centre + (prof - centre) * (1 - 2 * bevel / extent)
    return P.Manifold.batch_hull(
        [
            P.extrude_profile(prof, width - 2 * bevel, axis="x"),
            P.extrude_profile(shrunk, width, axis="x"),
        ]
    )


def car(rng: np.random.Generator) -> Assembly:
    """Cars: sedan, hatchback, wagon, SUV, pickup, van or sports car body with wheel arches on
    four wheels; optional spoiler and roof rack."""
    a = Assembly("car")
    body = a.choose(rng, list(_CAR_DIMS), p=[0.24, 0.16, 0.1, 0.15, 0.12, 0.12, 0.11])
    dims = _CAR_DIMS[body]
    L = a.uniform(rng, "length", *dims[0])
    Hr = a.uniform(rng, "roof_height", *dims[1])
    c = a.uniform(rng, "clearance", *dims[2])
    r = a.uniform(rng, "wheel_radius", *dims[3])
    hood = a.uniform(rng, "hood_fraction", *dims[4]) * L
    deck = a.uniform(rng, "deck_fraction", *dims[5]) * L
    W = a.uniform(rng, "width", 1.65, 2.05)
    belt = c + a.uniform(rng, "body_height", 0.45, 0.65) * (Hr - c) * (
        0.85 if body == "van" else 1.0
    )
    nose_drop = a.uniform(rng, "nose_drop", 0.05, 0.35) * (belt - c)
    tail_drop = a.uniform(rng, "tail_drop", 0.0, 0.25) * (belt - c)
    front_overhang = a.uniform(rng, "front_overhang", 0.15, 0.3)
    bevel = a.uniform(rng, "bevel", 0.04, 0.14)

    # wheel positions
    wheelbase = a.uniform(rng, "wheelbase_fraction", 0.55, 0.66) * L
    tw = a.uniform(rng, "tyre_width", 0.2, 0.28)
    shift = a.uniform(rng, "wheel_shift", -0.04, 0.04) * L
    wheel_z = [-wheelbase / 2 + shift, wheelbase / 2 + shift]

    # lower body: side profile (z, y) extruded across the width, edges bevelled
    zf, zr = L / 2, -L / 2
    low = [
        (zr, c + 0.12),
        (zr + 0.18, c),
        (zf - 0.2, c),
        (zf, c + front_overhang * (belt - c)),
        (zf - 0.05, belt - nose_drop),
    ]
    if body == "pickup":
        bed_floor = belt - a.uniform(rng, "bed_depth", 0.35, 0.5) * (belt - c)
        cab = a.uniform(rng, "cab_fraction", 0.28, 0.36) * L
        z_bed = zf - hood - cab
        front = low[2:] + [(zf - 0.25, belt), (z_bed, belt), (z_bed, c)]
        lower = _rounded_extrusion(np.array(front), W, bevel)
        rear = [
            (z_bed + 0.05, c),
            (z_bed + 0.05, bed_floor),
            (zr, bed_floor),
            (zr, c + 0.12),
            (zr + 0.18, c),
        ]
        lower = P.union([lower, _rounded_extrusion(np.array(rear), W, bevel)])
    else:
        prof = low + [
            (zf - min(0.5, hood * 0.5), belt - 0.02),
            (zf - hood, belt),
            (zr + deck, belt),
            (zr, belt - tail_drop),
        ]
        lower = _rounded_extrusion(np.array(prof), W, bevel)
    # wheel arches cut into the body
    arch_r = r * a.uniform(rng, "arch_ratio", 1.05, 1.18)
    x_cut = W / 2 - tw - 0.06  # arches reach this deep into the body from each side
    arches = [
        P.cylinder((sx * x_cut, r, z), (sx * W, r, z), arch_r, arch_r, 24)
        for z in wheel_z
        for sx in (-1, 1)
    ]
    a.add("body", lower - P.union(arches))

    # cabin / greenhouse: a hull between the beltline and the narrower roof
    z_ws = zf - hood
    if body == "pickup":
        z_back = z_bed
        roof_front = z_ws - 0.55 * (Hr - belt) * a.uniform(rng, "windshield_rake", 1.0, 1.6)
        roof_back = z_back + 0.05
    else:
        z_back = zr + deck
        rake = a.uniform(rng, "windshield_rake", 0.8, 1.7) * (0.6 if body == "van" else 1.0)
        roof_front = z_ws - rake * (Hr - belt)
        roof_back = z_back + a.uniform(rng, "rear_rake", *_REAR_RAKE[body]) * (Hr - belt)
    wb, wt = W * 0.94, W * a.uniform(rng, "roof_width", 0.75, 0.9)
    pts = []
    for x in (-1, 1):
        pts += [(x * wb / 2, belt - 0.05, z_ws + 0.05), (x * wb / 2, belt - 0.05, z_back)]
        pts += [(x * wt / 2, Hr, roof_front), (x * wt / 2, Hr, roof_back)]
    a.add("cabin", P.hull_points(np.array(pts)))

    if body == "pickup":
        wall = 0.07
        for sx in (-1, 1):
            a.add(
                "bed",
                P.box(
                    (wall, belt - bed_floor + 0.01, z_bed - zr),
                    (
                        sx * (W / 2 - wall / 2 - bevel * 0.5),
                        (belt + bed_floor) / 2,
                        (z_bed + zr) / 2,
                    ),
                ),
            )
        a.add(
            "bed",
            P.box(
                (W - bevel, belt - bed_floor + 0.01, wall),
                (0, (belt + bed_floor) / 2, zr + wall / 2 + 0.02),
            ),
        )

    for z in wheel_z:
        for sx in (-1, 1):
            x_in, x_out = sx * (W / 2 - tw - 0.02), sx * (W / 2 - 0.03)
            a.add("wheel", P.cylinder((x_in, r, z), (x_out, r, z), r, r, 24))
            a.add(
                "hub",
                P.cylinder(
                    (x_out - sx * 0.01, r, z), (x_out + sx * 0.015, r, z), r * 0.55, r * 0.5, 16
                ),
            )
            a.add(
                "axle", P.cylinder((x_in, r, z), (sx * (x_cut - 0.1), r, z), r * 0.3, r * 0.3, 12)
            )

    if body in ("sedan", "sports") and a.flag(rng, "spoiler", 0.35):
        a.add("spoiler", P.box((W * 0.85, 0.05, 0.22), (0, belt + 0.12, zr + 0.15)))
        for sx in (-1, 1):
            a.add("spoiler", P.box((0.05, 0.3, 0.08), (sx * W * 0.3, belt - 0.02, zr + 0.15)))
    if body in ("suv", "van", "wagon") and a.flag(rng, "roof-rack", 0.4):
        for sx in (-1, 1):
            a.add(
                "rack",
                P.box(
                    (0.06, 0.08, (roof_front - roof_back) * 0.8),
                    (sx * wt * 0.4, Hr + 0.03, (roof_front + roof_back) / 2),
                ),
            )
    return a


# ----------------------------------------------------------------------------- watercraft


def _hull(
    L: float,
    B: float,
    D: float,
    keel: float,
    bow_rise: float,
    stern_w: float,
    z0: float = 0.0,
    y0: float = 0.0,
) -> P.Manifold:
    """Convex boat hull of length L (bow at +z), beam B, depth D, keel half-width `keel`."""
    pts = []
    for x in (-1, 1):
        pts += [
            (x * B / 2 * stern_w, y0 + D, z0 - L / 2),
            (x * B / 2, y0 + D, z0 - L * 0.1),
            (x * B / 2 * 0.75, y0 + D + bow_rise * 0.4, z0 + L * 0.28),
            (x * keel, y0, z0 - L / 2 + 0.02 * L),
            (x * keel, y0, z0 + L * 0.25),
            (x * B / 2 * stern_w * 0.8, y0 + D * 0.35, z0 - L / 2),
        ]
    pts += [(0.0, y0 + D + bow_rise, z0 + L / 2), (0.0, y0 + D * 0.45, z0 + L / 2 - 0.03 * L)]
    return P.hull_points(np.array(pts))


def _pointed_hull(L: float, B: float, D: float, rise: float, deck: float = 0.0) -> P.Manifold:
    """Convex double-ended hull (canoe, kayak) of length L along z, beam B, depth D; the ends
    rise by `rise`; `deck` > 0 adds a ridge of that height along the middle (a closed deck)."""
    pts = []
    for x in (-1, 1):
        for z, w in ((-0.3, 0.8), (0.0, 1.0), (0.3, 0.8)):
            pts += [(x * B / 2 * w, D, z * L), (x * B / 2 * w * 0.35, 0.0, z * L)]
    for sz in (-1, 1):
        pts += [(0.0, D + rise, sz * L / 2), (0.0, D * 0.4, sz * (L / 2 - 0.03 * L))]
    if deck > 0:
        pts += [(0.0, D + deck, z * L) for z in (-0.3, 0.0, 0.3)]
    return P.hull_points(np.array(pts))


def _hollowed(hull: P.Manifold, B: float, L: float, t: float) -> P.Manifold:
    """An open boat: `hull` (beam B, length L, centred on x = z = 0) minus itself shrunk to
    leave walls about t thick and lifted by t (so that it cuts through the top)."""
    inner = hull.scale(((B - 2 * t) / B, 1.0, (L - 6 * t) / L)).translate((0.0, t, 0.0))
    return hull - inner


def _small_boat(a: Assembly, rng: np.random.Generator) -> Assembly:
    """Canoe (open, double-ended, thwarts), rowboat (open, transom stern, bench seats) or
    kayak (closed deck with a cockpit)."""
    L = 1.0
    t = MIN_FRACTION * L
    style = a.choose(rng, ["canoe", "rowboat", "kayak"], p=[0.35, 0.4, 0.25])
    if style == "canoe":
        B = a.uniform(rng, "beam", 0.13, 0.2)
        D = a.uniform(rng, "depth", 0.06, 0.09)
        hull = _pointed_hull(L, B, D, a.uniform(rng, "end_rise", 0.01, 0.04))
        a.add("hull", _hollowed(hull, B, L, t))
        n = int(rng.integers(2, 4))
        a.params["n_thwarts"] = float(n)
        for i in range(n):
            z = (i - (n - 1) / 2) * 0.25 * L
            # the hull's width at the thwart's height and station (its sides slope in)
            y = D - 0.6 * t
            w = 0.8 * B * (0.35 + 0.65 * y / D) * (1 - 0.67 * abs(z) / L)
            a.add("seat", P.box((w, t, 0.04), (0, y, z)))
    elif style == "rowboat":
        B = a.uniform(rng, "beam", 0.3, 0.42)
        D = a.uniform(rng, "depth", 0.1, 0.16)
        hull = _hull(L, B, D, 0.03, a.uniform(rng, "bow_rise", 0.02, 0.06), 0.65)
        a.add("hull", _hollowed(hull, B, L, t))
        n = int(rng.integers(2, 4))
        a.params["n_seats"] = float(n)
        for i in range(n):
            z = -0.3 * L + i * 0.25 * L
            w = 0.8 * (0.06 + (B - 0.06) * 0.72) * (1.0 if z < 0.1 else 0.75)
            a.add("seat", P.box((w, t, 0.06), (0, D * 0.72, z)))
        if a.flag(rng, "outboard", 0.4):
            a.add("engine", P.box((0.06, D * 1.2, 0.05), (0, D * 0.8, -L / 2 - 0.015)))
    else:
        B = a.uniform(rng, "beam", 0.09, 0.14)
        D = a.uniform(rng, "depth", 0.045, 0.07)
        hull = _pointed_hull(L, B, D, 0.01, deck=a.uniform(rng, "deck_height", 0.015, 0.035))
        zc = a.uniform(rng, "cockpit_position", -0.12, 0.05)
        cockpit = P.ellipsoid((0, D + 0.035, zc), (B * 0.3, 0.03, 0.13), 16)
        a.add("hull", hull - cockpit)
        # an elliptic rim around the cockpit
        rx, rz, w = B * 0.3, 0.13, max(0.06 * B, 0.6 * t)
        y_rim = D + a.params["deck_height"] * 0.6
        outer = P.cylinder((0, 0, 0), (0, 0.02, 0), rx + w, segments=24)
        inner = P.cylinder((0, -0.01, 0), (0, 0.03, 0), rx, segments=24)
        ring = (outer - inner).scale((1.0, 1.0, (rz + w) / (rx + w)))
        a.add("coaming", ring.translate((0.0, y_rim - 0.01, zc)))
    return a


def watercraft(rng: np.random.Generator) -> Assembly:
    """Watercraft: sailboat (one or two sails, fin keel), motorboat (cabin, optional
    flybridge, outboard), ship (cargo with containers, or liner with decks and funnels),
    submarine, or small boat (canoe, rowboat, kayak)."""
    a = Assembly("watercraft")
    kind = a.choose(
        rng,
        ["sailboat", "motorboat", "ship", "submarine", "small-boat"],
        p=[0.25, 0.25, 0.27, 0.1, 0.13],
    )
    if kind == "small-boat":
        return _small_boat(a, rng)
    L = 1.0
    if kind == "sailboat":
        B = a.uniform(rng, "beam", 0.25, 0.34)
        D = a.uniform(rng, "depth", 0.07, 0.1)
        mast_h = a.uniform(rng, "mast_height", 0.9, 1.4)
        longest = max(L, mast_h + D)
        tmin = MIN_FRACTION * longest
        keel_d = a.uniform(rng, "keel_depth", 0.1, 0.2)
        a.add("hull", _hull(L, B, D, 0.03, 0.03, 0.75, y0=keel_d))
        y_deck = keel_d + D
        zm = a.uniform(rng, "mast_position", 0.05, 0.2)
        a.add(
            "mast",
            P.cylinder(
                (0, y_deck - 0.02, zm), (0, y_deck + mast_h, zm), tmin * 0.6, tmin * 0.5, 10
            ),
        )
        boom = a.uniform(rng, "boom_length", 0.35, 0.5)
        a.add(
            "sail",
            P.plate(
                np.array(
                    [
                        (0, y_deck + 0.06, zm - 0.01),
                        (0, y_deck + mast_h * 0.97, zm - 0.01),
                        (0, y_deck + 0.06, zm - boom),
                    ]
                ),
                tmin,
                (1, 0, 0),
            ),
        )
        if a.flag(rng, "jib", 0.7):
            a.add(
                "sail",
                P.plate(
                    np.array(
                        [
                            (0, y_deck + mast_h * 0.8, zm + 0.01),
                            (0, y_deck + 0.03, L / 2 - 0.05),
                            (0, y_deck + 0.05, zm + 0.02),
                        ]
                    ),
                    tmin,
                    (1, 0, 0),
                ),
            )
        keel_style = a.choose(rng, ["fin-keel", "bulb-keel"])
        a.add(
            "keel",
            P.plate(
                np.array(
                    [
                        (0, keel_d + 0.02, 0.12),
                        (0, keel_d + 0.02, -0.1),
                        (0, 0, -0.04),
                        (0, 0, 0.05),
                    ]
                ),
                tmin,
                (1, 0, 0),
            ),
        )
        if keel_style == "bulb-keel":
            a.add("keel", P.ellipsoid((0, tmin, 0.0), (tmin * 1.2, tmin * 1.2, 0.08), 12))
        a.add(
            "rudder",
            P.plate(
                np.array(
                    [(0, keel_d + 0.01, -0.38), (0, keel_d + 0.01, -0.45), (0, keel_d * 0.3, -0.44)]
                ),
                tmin,
                (1, 0, 0),
            ),
        )
        if a.flag(rng, "cabin", 0.6):
            a.add("cabin", P.rounded_box((B * 0.5, 0.06, 0.3), 0.02, (0, y_deck + 0.02, zm - 0.2)))
        return a
    if kind == "motorboat":
        B = a.uniform(rng, "beam", 0.3, 0.42)
        D = a.uniform(rng, "depth", 0.13, 0.2)
        tmin = MIN_FRACTION
        a.add("hull", _hull(L, B, D, 0.02, a.uniform(rng, "bow_rise", 0.02, 0.08), 0.9))
        zc = a.uniform(rng, "cabin_position", -0.15, 0.1)
        cl = a.uniform(rng, "cabin_length", 0.25, 0.45)
        chh = a.uniform(rng, "cabin_height", 0.08, 0.16)
        cw = B * 0.7
        pts = []
        for x in (-1, 1):
            pts += [(x * cw / 2, D - 0.01, zc + cl / 2), (x * cw / 2, D - 0.01, zc - cl / 2)]
            pts += [
                (x * cw / 2 * 0.85, D + chh, zc + cl / 2 - chh * 1.2),
                (x * cw / 2 * 0.85, D + chh, zc - cl / 2),
            ]
        a.add("cabin", P.hull_points(np.array(pts)))
        top = a.choose(rng, ["flybridge", "open-deck", "hardtop"], p=[0.3, 0.4, 0.3])
        if top == "flybridge":
            a.add(
                "cabin", P.box((cw * 0.8, chh * 0.7, cl * 0.6), (0, D + chh * 1.3, zc - cl * 0.15))
            )
        elif top == "hardtop":
            for sx in (-1, 1):
                a.add(
                    "cabin",
                    P.box_between(
                        (sx * cw * 0.35 - tmin / 2, D - 0.02, zc - cl / 2 - 0.12 - tmin / 2),
                        (sx * cw * 0.35 + tmin / 2, D + chh * 2.1, zc - cl / 2 - 0.12 + tmin / 2),
                    ),
                )
            a.add("cabin", P.box((cw * 0.85, tmin, 0.22), (0, D + chh * 2.1, zc - cl / 2 - 0.05)))
        if a.flag(rng, "outboard", 0.5):
            a.add("engine", P.box((0.07, D * 0.9, 0.06), (0, D * 0.75, -L / 2 - 0.02)))
        return a
    if kind == "ship":
        B = a.uniform(rng, "beam", 0.11, 0.2)
        D = a.uniform(rng, "depth", 0.06, 0.12)
        tmin = MIN_FRACTION
        a.add("hull", _hull(L, B, D, B * 0.35, 0.02, 0.85))
        style = a.choose(rng, ["cargo", "liner", "warship"])
        if style == "cargo":
            lv = int(rng.integers(2, 5))
            a.params["decks"] = float(lv)
            zs = -L / 2 + a.uniform(rng, "bridge_position", 0.08, 0.2)
            dh = a.uniform(rng, "deck_height", 0.025, 0.045)
            bl = a.uniform(rng, "bridge_length", 0.07, 0.13)
            for i in range(lv):
                a.add(
                    "superstructure",
                    P.box(
                        (B * (0.85 - 0.1 * i), dh + 0.005, bl * (1 - 0.1 * i)),
                        (0, D + dh / 2 + dh * i, zs),
                    ),
                )
            zf = max(zs - bl / 2 - 0.01, -L / 2 + 0.05)
            a.add(
                "funnel",
                P.cylinder((0, D - 0.01, zf), (0, D + dh * lv + 0.04, zf), 0.022, 0.018, 12),
            )
            n = int(rng.integers(2, 6))
            a.params["container_rows"] = float(n)
            hgt = a.uniform(rng, "container_height", 0.02, 0.06)
            span = L * 0.6 / n
            for i in range(n):
                z = zs + 0.1 + (i + 0.5) * span
                a.add("cargo", P.box((B * 0.8, hgt, span * 0.9), (0, D + hgt / 2 - 0.005, z)))
        elif style == "liner":
            lv = int(rng.integers(2, 5))
            a.params["decks"] = float(lv)
            ln = a.uniform(rng, "superstructure_length", 0.4, 0.72)
            zc = a.uniform(rng, "superstructure_position", -0.15, 0.08)
            dh = a.uniform(rng, "deck_height", 0.028, 0.045)
            for i in range(lv):
                a.add(
                    "superstructure",
                    P.rounded_box(
                        (B * (0.9 - 0.08 * i), dh + 0.008, ln * (1 - 0.12 * i)),
                        0.01,
                        (0, D + dh / 2 + dh * i, zc),
                    ),
                )
            nf = int(rng.integers(1, 4))
            a.params["funnels"] = float(nf)
            for j in range(nf):
                z = zc + (j - (nf - 1) / 2) * 0.1
                a.add(
                    "funnel",
                    P.cylinder(
                        (0, D + dh * (lv - 0.5), z),
                        (0, D + dh * lv + 0.07, z - 0.015),
                        0.03,
                        0.026,
                        12,
                    ),
                )
        else:
            sl = a.uniform(rng, "superstructure_length", 0.14, 0.3)
            sz = a.uniform(rng, "superstructure_position", -0.08, 0.08)
            sh = a.uniform(rng, "superstructure_height", 0.04, 0.08)
            a.add("superstructure", P.box((B * 0.7, sh, sl), (0, D + sh / 2 - 0.005, sz)))
            a.add(
                "superstructure",
                P.box((B * 0.5, sh * 0.8, sl * 0.5), (0, D + sh * 1.25, sz + 0.02)),
            )
            mh = a.uniform(rng, "mast_height", 0.1, 0.2)
            a.add("mast", P.cylinder((0, D + sh, sz), (0, D + sh + mh, sz), tmin / 2, tmin / 2, 8))
            for z in (sz + sl / 2 + 0.09, sz - sl / 2 - 0.09):
                a.add("turret", P.cylinder((0, D - 0.005, z), (0, D + 0.03, z), 0.035, 0.03, 12))
                a.add("turret", P.box((tmin, tmin, 0.08), (0, D + 0.018, z + np.sign(z) * 0.05)))
        return a
    # submarine
    R = a.uniform(rng, "hull_radius", 0.05, 0.08)
    tmin = MIN_FRACTION
    a.add(
        "hull",
        P.Manifold.batch_hull(
            [
                P.ellipsoid((0, R, L / 2 - 0.12), (R, R, 0.12), 16),
                P.sphere((0, R, -0.1), R, 16),
                P.sphere((0, R, -L / 2 + 0.02), 0.02, 8),
            ]
        ),
    )
    zs = a.uniform(rng, "sail_position", 0.05, 0.22)
    sh = a.uniform(rng, "sail_height", 0.05, 0.09)
    a.add(
        "sail",
        P.rounded_box((tmin * 1.2, sh + R * 0.5, 0.1), 0.012, (0, 2 * R + sh / 2 - 0.25 * R, zs)),
    )
    a.add(
        "fin",
        P.box((0.16, tmin, 0.05), (0, R, -L / 2 + 0.08)),
        P.box((tmin, 0.16, 0.05), (0, R, -L / 2 + 0.08)),
    )
    if a.flag(rng, "sail-planes", 0.6):
        a.add("fin", P.box((0.12, tmin * 0.8, 0.035), (0, 2 * R + sh * 0.5, zs)))
    else:
        a.add("fin", P.box((0.14, tmin * 0.8, 0.035), (0, R, L / 2 - 0.15)))
    return a
