"""Furniture families: chair, table, sofa, bench, cabinet (units: metres, ground at y = 0).

Front faces +z (the seat's open side, the cabinet's doors); the long side of a table, sofa,
bench or cabinet runs along x.
"""

from __future__ import annotations

import numpy as np

from svr.data.procedural import primitives as P
from svr.data.procedural.assembly import Assembly

# Thin members are at least this fraction of the shape's longest side thick, so that they
# survive voxelisation at 32^3 (one voxel is 1/32 = 0.031 of the longest side).
MIN_FRACTION = 0.03


def _thick(value: float, longest: float) -> float:
    return max(float(value), MIN_FRACTION * longest)


# ----------------------------------------------------------------------------- chair


def _leg(a: Assembly, top: np.ndarray, bottom: np.ndarray, w: float, round_legs: bool) -> None:
    if round_legs:
        a.add("leg", P.cylinder(bottom, top, w / 2, w / 2 * 1.2, 12))
    else:
        a.add("leg", P.beam(bottom, top, w))


def _armchair(a: Assembly, rng: np.random.Generator) -> Assembly:
    """An upholstered (club) armchair: a padded block on a skirt or short legs, a thick back
    leaning back a little, usually solid arm panels; one seat cushion."""
    W = a.uniform(rng, "seat_width", 0.6, 0.88)
    D = a.uniform(rng, "seat_depth", 0.62, 0.9)
    H = a.uniform(rng, "seat_height", 0.38, 0.48)
    BH = a.uniform(rng, "back_height", 0.38, 0.65)  # above the seat
    bt = a.uniform(rng, "back_thickness", 0.1, 0.2)
    tilt = a.uniform(rng, "back_tilt", 0.0, 0.2)
    longest = max(W, D, H + BH)
    legs = a.choose(rng, ["skirt", "short-legs"], p=[0.4, 0.6])
    y0 = a.uniform(rng, "leg_height", 0.05, 0.15) if legs == "short-legs" else 0.0
    ch = a.uniform(rng, "cushion_height", 0.08, 0.14)
    ys = H - ch  # top of the base block
    a.add("base", P.rounded_box((W, ys - y0, D), 0.03, (0, (y0 + ys) / 2, 0)))
    arms = a.flag(rng, "arms", 0.85)
    aw = a.uniform(rng, "arm_width", 0.07, 0.15) if arms else 0.0
    a.add(
        "seat",
        P.rounded_box(
            (W - 2 * aw, ch + 0.01, D - bt), 0.035, (0, ys + (ch + 0.01) / 2 - 0.01, bt / 2)
        ),
    )
    # the back, leaning back about its bottom rear edge
    back = P.rounded_box((W, H + BH - y0, bt), 0.04, (0, (H + BH - y0) / 2, bt / 2))
    rot = P.rotation_matrix((1, 0, 0), -tilt)
    a.add("back", P.transform(back, rot, (0, y0, -D / 2)))
    if arms:
        ah = a.uniform(rng, "arm_height", 0.15, 0.28)
        rolled = a.flag(rng, "rolled-arms", 0.35)
        for sx in (-1, 1):
            x = sx * (W / 2 - aw / 2)
            top = H + ah
            a.add("arm", P.rounded_box((aw, top - y0, D), 0.03, (x, (y0 + top) / 2, 0)))
            if rolled:
                r = aw * 0.6
                a.add("arm", P.cylinder((x, top - r * 0.4, -D / 2), (x, top - r * 0.4, D / 2), r))
    if legs == "short-legs":
        lw = _thick(0.045, longest)
        for sx in (-1, 1):
            for sz in (-1, 1):
                x, z = sx * (W / 2 - 0.06), sz * (D / 2 - 0.06)
                a.add("leg", P.cylinder((x, 0, z), (x, y0 + 0.02, z), lw / 2, lw / 2 * 1.3, 10))
    return a


def chair(rng: np.random.Generator) -> Assembly:
    """Chairs: four legs / pedestal (star or disc) / sled base; solid, slatted or ladder back;
    with or without arms; or an upholstered (club) armchair on a skirt or short legs."""
    a = Assembly("chair")
    base = a.choose(
        rng, ["four-legs", "pedestal", "sled", "upholstered"], p=[0.48, 0.22, 0.18, 0.12]
    )
    if base == "upholstered":
        return _armchair(a, rng)
    back = a.choose(rng, ["solid-back", "slatted-back", "ladder-back"])
    arms = a.flag(rng, "arms", 0.35)
    W = a.uniform(rng, "seat_width", 0.42, 0.58)
    D = a.uniform(rng, "seat_depth", 0.4, 0.54)
    H = a.uniform(rng, "seat_height", 0.36, 0.52)
    # back height above the seat (a narrow range keeps the seat at one height after
    # normalisation: room in the 32^3 IoU budget for the upholstered armchairs)
    BH = a.uniform(rng, "back_ratio", 0.85, 1.15) * H
    tilt = a.uniform(rng, "back_tilt", 0.0, 0.3)
    longest = max(H + BH, W, D)
    T = max(a.uniform(rng, "seat_thickness", 0.04, 0.1), 0.065 * longest)
    lw = max(a.uniform(rng, "leg_width", 0.03, 0.06), 0.045 * longest)
    y_seat = H - T  # underside of the seat

    a.add("seat", P.rounded_box((W, T, D), min(T / 3, 0.02), (0, H - T / 2, 0)))

    # back: posts at the rear corners, leaning back by `tilt`
    bt = max(a.uniform(rng, "back_thickness", 0.04, 0.08), 0.045 * longest)
    z0 = -D / 2 + bt / 2
    top_z = z0 - BH * np.sin(tilt)
    top_y = H + BH * np.cos(tilt)
    if back == "solid-back":
        taper = a.uniform(rng, "back_taper", 0.75, 1.1)
        wb, wt = W * 0.98, W * 0.98 * taper
        corners = np.array(
            [
                (-wb / 2, H - T / 2, z0),
                (wb / 2, H - T / 2, z0),
                (wt / 2, top_y, top_z),
                (-wt / 2, top_y, top_z),
            ]
        )
        normal = (0.0, np.sin(tilt), np.cos(tilt))
        a.add("back", P.plate(corners, bt, normal))
    else:
        pw = _thick(0.8 * lw, longest)
        for sx in (-1, 1):
            x = sx * (W / 2 - pw / 2)
            a.add("back", P.beam((x, H - T / 2, z0), (x, top_y, top_z), pw, bt))
        rail_h = _thick(a.uniform(rng, "rail_height", 0.04, 0.09), longest)
        yr = top_y - rail_h / 2
        zr = z0 - (yr - H) * np.tan(tilt)
        a.add("back", P.box((W, rail_h, bt), (0, yr, zr)))
        if back == "slatted-back":
            n = int(rng.integers(2, 6))
            a.params["n_slats"] = float(n)
            sw = _thick(min(0.05, (W - 2 * pw) / (2 * n + 1)), longest)
            for i in range(n):
                x = -W / 2 + pw + (i + 1) * (W - 2 * pw) / (n + 1)
                a.add("slat", P.beam((x, H - T / 2, z0), (x, yr, zr), sw, bt * 0.8))
        else:
            n = int(rng.integers(1, 4))
            a.params["n_rails"] = float(n)
            for i in range(n):
                y = H + (i + 1) * (yr - H) / (n + 1)
                z = z0 - (y - H) * np.tan(tilt)
                a.add("slat", P.box((W - pw, rail_h * 0.8, bt * 0.8), (0, y, z)))

    if arms:
        ah = a.uniform(rng, "arm_height", 0.17, 0.28)
        aw = _thick(0.05, longest)
        for sx in (-1, 1):
            x = sx * (W / 2 - aw / 2 + 0.01)
            a.add("arm", P.beam((x, H + ah, z0), (x, H + ah, D / 2 - aw), aw, aw * 0.8))
            a.add(
                "arm", P.beam((x, H - T / 2, D / 2 - 1.5 * aw), (x, H + ah, D / 2 - aw), aw * 0.8)
            )

    if base == "four-legs":
        round_legs = a.flag(rng, "round-legs", 0.5)
        splay = a.uniform(rng, "leg_splay", 0.0, 0.06)
        inset = lw / 2 + 0.01
        for sx in (-1, 1):
            for sz in (-1, 1):
                top = np.array([sx * (W / 2 - inset), y_seat + 0.01, sz * (D / 2 - inset)])
                bottom = np.array([top[0] + sx * splay, 0.0, top[2] + sz * splay])
                _leg(a, top, bottom, lw, round_legs)
        if a.flag(rng, "stretchers", 0.4):
            ys = 0.15 * H
            for sx in (-1, 1):
                x = sx * (W / 2 - inset + splay * 0.85)
                a.add(
                    "stretcher",
                    P.beam(
                        (x, ys, -(D / 2 - inset + splay * 0.85)),
                        (x, ys, D / 2 - inset + splay * 0.85),
                        lw * 0.7,
                    ),
                )
    elif base == "pedestal":
        cr = _thick(a.uniform(rng, "column_radius", 0.025, 0.045), longest / 2)
        star = a.flag(rng, "star-base", 0.7)
        fy = 0.06
        a.add("column", P.cylinder((0, fy, 0), (0, y_seat + 0.02, 0), cr, cr, 16))
        a.add(
            "column",
            P.cylinder((0, y_seat - 0.02, 0), (0, y_seat + 0.01, 0), cr * 2.2, cr * 2.2, 16),
        )
        R = a.uniform(rng, "base_radius", 0.22, 0.34)
        if star:
            n = int(rng.integers(4, 6))
            a.params["n_spokes"] = float(n)
            for i in range(n):
                ang = 2 * np.pi * i / n + np.pi / 2
                tip = np.array([R * np.cos(ang), 0.035, R * np.sin(ang)])
                a.add("foot", P.beam((0, fy, 0), tip, _thick(0.04, longest)))
                a.add("foot", P.sphere(tip * np.array([1, 0, 1]) + (0, 0.025, 0), 0.025, 8))
        else:
            a.add("foot", P.cylinder((0, 0, 0), (0, fy, 0), R, R * 0.9, 24))
    else:  # sled
        r = _thick(a.uniform(rng, "runner_radius", 0.012, 0.02) * 2, longest) / 2
        for sx in (-1, 1):
            x = sx * (W / 2 - r)
            pts = np.array(
                [
                    (x, y_seat + 0.01, D / 2 - 0.06),
                    (x, r, D / 2 + 0.02),
                    (x, r, -D / 2 - 0.02),
                    (x, y_seat + 0.01, -D / 2 + 0.06),
                ]
            )
            a.add("runner", P.tube(pts, r, 10))
    return a


# ----------------------------------------------------------------------------- table

# the uses each top shape comes in, with their probabilities
_TABLE_USES: dict[str, tuple[list[str], list[float]]] = {
    "rect-top": (["dining", "coffee", "desk", "console", "bar"], [0.64, 0.12, 0.14, 0.05, 0.05]),
    "square-top": (["dining", "coffee", "side"], [0.7, 0.2, 0.1]),
    "round-top": (["dining", "coffee", "bar"], [0.75, 0.15, 0.1]),
}
# height (m) per use
_TABLE_HEIGHT = {
    "dining": (0.7, 0.78),
    "coffee": (0.35, 0.5),
    "bar": (0.9, 1.05),
    "side": (0.5, 0.7),
    "console": (0.75, 0.85),
    "desk": (0.72, 0.78),
}
# height / length (or diameter, or side) per (top, use); above 1 the height is the longest
# side. The ranges are kept narrow: the top's height after normalisation follows this ratio,
# and a family whose tops sit at scattered heights has no shape in common at 32^3.
_TABLE_RATIO = {
    ("rect-top", "dining"): (0.44, 0.56),
    ("rect-top", "coffee"): (0.34, 0.46),
    ("rect-top", "desk"): (0.46, 0.58),
    ("rect-top", "console"): (0.6, 0.78),
    ("rect-top", "bar"): (0.62, 0.8),
    ("square-top", "dining"): (0.5, 0.66),
    ("square-top", "coffee"): (0.4, 0.52),
    ("square-top", "side"): (0.85, 1.1),
    ("round-top", "dining"): (0.44, 0.58),
    ("round-top", "coffee"): (0.32, 0.44),
    ("round-top", "bar"): (0.8, 1.0),
}
# width / length of rectangular tops per use
_TABLE_WIDTH = {
    "dining": (0.5, 0.85),
    "coffee": (0.4, 0.75),
    "desk": (0.42, 0.62),
    "console": (0.22, 0.4),
    "bar": (0.4, 0.7),
}
# bases per top shape (desks and consoles have their own)
_TABLE_BASES: dict[str, tuple[list[str], list[float]]] = {
    "rect-top": (["four-legs", "pedestal", "trestle"], [0.62, 0.13, 0.25]),
    "square-top": (["four-legs", "pedestal"], [0.78, 0.22]),
    "round-top": (["four-legs", "pedestal", "tripod", "drum-base"], [0.27, 0.45, 0.18, 0.1]),
    "desk": (["drawer-pedestal", "twin-pedestals"], [0.55, 0.45]),
    "console": (["four-legs"], [1.0]),
}


def _drawer_pedestal(
    a: Assembly,
    rng: np.random.Generator,
    x: float,
    size: tuple[float, float, float],
    longest: float,
) -> None:
    """A desk's drawer pedestal: a box of `size` (x, y, z) standing on the ground, centred on
    x, with 2-4 drawer fronts and their handles on its +z face."""
    w, h, d = size
    a.add("pedestal", P.box((w, h, d), (x, h / 2, 0)))
    n = int(rng.integers(2, 5))
    a.params["n_drawers"] = float(n)
    ft = _thick(0.018, longest) * 0.8
    hs = _thick(0.02, longest)
    gap = 0.012
    kick = 0.05  # a recessed strip at the bottom
    dh = (h - kick) / n
    for i in range(n):
        y = kick + (i + 0.5) * dh
        a.add("drawer", P.box((w - 2 * gap, dh - gap, ft), (x, y, d / 2 + ft / 2 - 0.003)))
        a.add("handle", P.box((min(0.12, w * 0.35), hs, hs * 1.5), (x, y + dh * 0.15, d / 2 + ft)))


def table(rng: np.random.Generator) -> Assembly:
    """Tables: rectangular, square or round / oval top; dining, coffee, bar, side (end) and
    console heights and proportions, and desks; four legs (slim or chunky), pedestal (one or
    two columns), trestle, tripod or drum base; desks on one or two drawer pedestals; optional
    apron and lower shelf."""
    a = Assembly("table")
    top = a.choose(rng, ["rect-top", "square-top", "round-top"], p=[0.56, 0.1, 0.34])
    use = a.choose(rng, *_TABLE_USES[top])
    H = a.uniform(rng, "height", *_TABLE_HEIGHT[use])
    # the height / length (or diameter) ratio is drawn directly: it fixes where the top sits
    # after normalisation
    ratio = a.uniform(rng, "height_ratio", *_TABLE_RATIO[(top, use)])
    L = H / ratio
    if top == "rect-top":
        Wd = a.uniform(rng, "width_ratio", *_TABLE_WIDTH[use]) * L
    elif top == "square-top":
        Wd = L
    else:
        # round or oval: the second axis is a fraction of the diameter
        Wd = L * (a.uniform(rng, "oval_ratio", 0.65, 0.95) if rng.random() < 0.2 else 1.0)
    base = a.choose(rng, *_TABLE_BASES[use if use in ("desk", "console") else top])
    longest = max(L, Wd, H)
    # tops over 2 voxels thick at 32^3 (thinner ones fall between voxel centres, and the
    # tops of real tables' mean shapes are thick too)
    T = max(a.uniform(rng, "top_thickness", 0.03, 0.08), 0.075 * longest)
    chunky = base == "four-legs" and top == "square-top" and a.flag(rng, "chunky-legs", 0.35)
    lw_range = (0.07, 0.12) if chunky else (0.04, 0.07)
    lw = a.uniform(rng, "leg_width_ratio", *lw_range) * longest
    y_under = H - T
    if top == "round-top":
        disc = P.cylinder((0, y_under, 0), (0, H, 0), L / 2, L / 2, 32)
        a.add("top", P.transform(disc, np.diag([1.0, 1.0, Wd / L])))
    else:
        a.add("top", P.rounded_box((L, T, Wd), min(T / 3, 0.015), (0, H - T / 2, 0)))

    if base in ("four-legs", "tripod"):
        round_legs = a.flag(rng, "round-legs", 0.5)
        inset = a.uniform(rng, "leg_inset", 0.02, 0.09) * min(L, Wd)
        splay = a.uniform(rng, "leg_splay", 0.0, 0.05) if not chunky else 0.0
        if base == "four-legs":
            if top != "round-top":
                feet = [
                    (sx * (L / 2 - inset - lw / 2), sz * (Wd / 2 - inset - lw / 2))
                    for sx in (-1, 1)
                    for sz in (-1, 1)
                ]
            else:
                rr = L / 2 * 0.72 - lw / 2
                feet = [
                    (rr * np.cos(t), rr * np.sin(t) * Wd / L)
                    for t in np.pi / 4 + np.arange(4) * np.pi / 2
                ]
        else:
            rr = L / 2 * 0.6
            feet = [
                (rr * np.cos(t), rr * np.sin(t) * Wd / L)
                for t in np.pi / 2 + np.arange(3) * 2 * np.pi / 3
            ]
        for fx, fz in feet:
            d = np.array([fx, fz]) / max(np.hypot(fx, fz), 1e-9)
            topp = np.array([fx, y_under + 0.01, fz])
            bot = np.array([fx + d[0] * splay, 0.0, fz + d[1] * splay])
            _leg(a, topp, bot, lw, round_legs)
        if top != "round-top":
            xs, zs = L / 2 - inset - lw / 2, Wd / 2 - inset - lw / 2
            if a.flag(rng, "apron", 0.6):
                ah = _thick(a.uniform(rng, "apron_height", 0.05, 0.12), longest)
                at = _thick(0.02, longest)
                for sz in (-1, 1):
                    a.add("apron", P.box((2 * xs, ah, at), (0, y_under - ah / 2 + 0.005, sz * zs)))
                for sx in (-1, 1):
                    a.add("apron", P.box((at, ah, 2 * zs), (sx * xs, y_under - ah / 2 + 0.005, 0)))
            shelf_p = 0.5 if use in ("coffee", "console", "side") else 0.2
            if a.flag(rng, "shelf", shelf_p):
                yb = a.uniform(rng, "shelf_height", 0.12, 0.35) * H
                # splayed legs stand further out at the shelf's height
                out = splay * (1 - yb / y_under) + 0.9 * lw
                a.add(
                    "shelf",
                    P.box((2 * (xs + out), _thick(0.02, longest), 2 * (zs + out)), (0, yb, 0)),
                )
    elif base == "pedestal":
        cr = _thick(a.uniform(rng, "column_radius", 0.04, 0.09), longest / 2)
        foot = a.choose(rng, ["disc-foot", "cross-foot"])
        # long tables on a pedestal get two columns
        double = top == "rect-top" and L > 1.2
        a.variants.append("double-pedestal" if double else "single-pedestal")
        R = a.uniform(rng, "foot_radius", 0.25, 0.45) * min(L, Wd)
        for cx in (-L / 4, L / 4) if double else (0.0,):
            a.add("column", P.cylinder((cx, 0.02, 0), (cx, y_under + 0.01, 0), cr, cr, 20))
            if foot == "disc-foot":
                a.add(
                    "foot", P.cylinder((cx, 0, 0), (cx, _thick(0.04, longest), 0), R, R * 0.85, 32)
                )
            else:
                fw = _thick(0.05, longest)
                a.add(
                    "foot",
                    P.box((2 * R, fw, fw * 1.4), (cx, fw / 2, 0)),
                    P.box((fw * 1.4, fw, 2 * R), (cx, fw / 2, 0)),
                )
    elif base == "drum-base":
        # a solid drum under the top (round side and coffee tables)
        R = a.uniform(rng, "drum_ratio", 0.3, 0.46) * min(L, Wd)
        a.add("base", P.cylinder((0, 0, 0), (0, y_under + 0.01, 0), R, R, 28))
        if a.flag(rng, "plinth", 0.4):
            a.add(
                "base", P.cylinder((0, 0, 0), (0, _thick(0.03, longest), 0), R * 1.12, R * 1.12, 28)
            )
    elif base in ("drawer-pedestal", "twin-pedestals"):
        pw = a.uniform(rng, "pedestal_ratio", 0.26, 0.4) * L
        depth = Wd * a.uniform(rng, "pedestal_depth", 0.85, 0.95)
        side = -1.0 if rng.random() < 0.5 else 1.0
        inset = a.uniform(rng, "pedestal_inset", 0.0, 0.04) * L
        x_ped = side * (L / 2 - inset - pw / 2)
        _drawer_pedestal(a, rng, x_ped, (pw, y_under + 0.01, depth), longest)
        if base == "twin-pedestals":
            _drawer_pedestal(a, rng, -x_ped, (pw, y_under + 0.01, depth), longest)
        else:
            pt = _thick(0.035, longest)
            if a.choose(rng, ["panel-end", "leg-end"]) == "panel-end":
                x = -side * (L / 2 - inset - pt / 2)
                a.add("leg", P.box((pt, y_under + 0.01, depth), (x, (y_under + 0.01) / 2, 0)))
            else:
                x = -side * (L / 2 - inset - lw / 2)
                for sz in (-1, 1):
                    z = sz * (depth / 2 - lw / 2)
                    # a beam's end boxes reach lw / 2 past its ends: start it above the ground
                    a.add("leg", P.beam((x, lw / 2, z), (x, y_under + 0.01, z), lw))
        if a.flag(rng, "modesty-panel", 0.6):
            inner = L - 2 * (inset + pw) + 0.02
            mh = a.uniform(rng, "modesty_height", 0.3, 0.6) * y_under
            pt = _thick(0.02, longest)
            a.add(
                "panel",
                P.box((inner, mh, pt), (0, y_under - mh / 2 + 0.01, -depth / 2 + pt / 2)),
            )
    else:  # trestle
        ex = L / 2 - a.uniform(rng, "trestle_inset", 0.08, 0.2) * L
        pw = _thick(0.05, longest)
        style = a.choose(rng, ["panel-ends", "frame-ends"])
        for sx in (-1, 1):
            x = sx * ex
            if style == "panel-ends":
                a.add("leg", P.box((pw, y_under + 0.01, Wd * 0.8), (x, (y_under + 0.01) / 2, 0)))
            else:
                a.add("leg", P.beam((x, 0.0, -Wd * 0.35), (x, y_under + 0.01, -Wd * 0.1), pw))
                a.add("leg", P.beam((x, 0.0, Wd * 0.35), (x, y_under + 0.01, Wd * 0.1), pw))
                a.add("leg", P.box((pw * 1.2, pw, Wd * 0.8), (x, pw / 2, 0)))
                a.add("leg", P.box((pw, y_under + 0.01, pw), (x, (y_under + 0.01) / 2, 0)))
        a.add("stretcher", P.box((2 * ex, pw, pw), (0, y_under * 0.45, 0)))
    return a


# ----------------------------------------------------------------------------- sofa


def sofa(rng: np.random.Generator) -> Assembly:
    """Sofas: 1-4 seat cushions, box / rolled / no arms, tight or cushioned back, plinth or
    legs, optional L-shaped chaise."""
    a = Assembly("sofa")
    # real sofas are mostly two- and three-seaters (one-seaters look like armchairs)
    n_seats = int(rng.choice([1, 2, 3, 4], p=[0.08, 0.34, 0.4, 0.18]))
    a.variants.append(f"{n_seats}-seat")
    arms = a.choose(rng, ["box-arms", "rolled-arms", "no-arms"], p=[0.45, 0.35, 0.2])
    back = a.choose(rng, ["tight-back", "cushion-back"])
    base = a.choose(rng, ["plinth", "legs"])
    chaise = a.flag(rng, "chaise", 0.25) if n_seats >= 2 else False
    seat_w = a.uniform(rng, "seat_width", 0.5, 0.75)
    D = a.uniform(rng, "depth", 0.75, 1.0)
    arm_w = a.uniform(rng, "arm_width", 0.1, 0.25) if arms != "no-arms" else 0.0
    Wt = n_seats * seat_w + 2 * arm_w
    leg_h = a.uniform(rng, "leg_height", 0.05, 0.16) if base == "legs" else 0.0
    base_h = a.uniform(rng, "base_height", 0.15, 0.28)
    cush_h = a.uniform(rng, "cushion_height", 0.1, 0.18)
    back_h = a.uniform(rng, "back_height", 0.3, 0.5)
    back_t = a.uniform(rng, "back_thickness", 0.15, 0.28)
    arm_h = a.uniform(rng, "arm_height", 0.15, 0.3)
    longest = max(Wt, D + (0.7 if chaise else 0))
    y0 = leg_h
    ys = y0 + base_h  # top of the base frame
    # base frame
    a.add("base", P.rounded_box((Wt, base_h, D), 0.03, (0, y0 + base_h / 2, 0)))
    if chaise:
        cd = a.uniform(rng, "chaise_length", 0.5, 0.8)
        side = -1 if rng.random() < 0.5 else 1
        cx = side * (Wt / 2 - arm_w - seat_w / 2)
        a.add(
            "base",
            P.rounded_box(
                (seat_w + 2 * arm_w if arms != "no-arms" else seat_w, base_h, cd + 0.05),
                0.03,
                (
                    side * (Wt / 2 - (seat_w + 2 * arm_w) / 2),
                    y0 + base_h / 2,
                    D / 2 + cd / 2 - 0.025,
                ),
            ),
        )
        a.add(
            "cushion",
            P.rounded_box(
                (seat_w * 0.98, cush_h, cd + D - back_t),
                0.04,
                (cx, ys + cush_h / 2 - 0.01, (D / 2 + cd + (-D / 2 + back_t)) / 2),
            ),
        )
    # back
    yb_top = ys + cush_h + back_h
    a.add(
        "back",
        P.rounded_box((Wt, yb_top - y0, back_t), 0.04, (0, (y0 + yb_top) / 2, -D / 2 + back_t / 2)),
    )
    # seat cushions
    inner = Wt - 2 * arm_w
    cw = inner / n_seats
    for i in range(n_seats):
        x = -inner / 2 + (i + 0.5) * cw
        if chaise and abs(x - cx) < 1e-6:
            continue
        a.add(
            "cushion",
            P.rounded_box(
                (cw * 0.98, cush_h, D - back_t), 0.04, (x, ys + cush_h / 2 - 0.01, back_t / 2)
            ),
        )
        if back == "cushion-back":
            bc_t = a.params.setdefault("back_cushion_thickness", float(rng.uniform(0.1, 0.18)))
            a.add(
                "back_cushion",
                P.rounded_box(
                    (cw * 0.97, back_h * 0.9, bc_t),
                    0.05,
                    (x, ys + cush_h + back_h * 0.45, -D / 2 + back_t + bc_t / 2 - 0.02),
                ),
            )
    # arms
    if arms != "no-arms":
        ya = ys + cush_h + arm_h
        for sx in (-1, 1):
            x = sx * (Wt / 2 - arm_w / 2)
            a.add("arm", P.rounded_box((arm_w, ya - y0, D), 0.03, (x, (y0 + ya) / 2, 0)))
            if arms == "rolled-arms":
                r = arm_w * 0.65
                a.add(
                    "arm",
                    P.cylinder(
                        (x, ya - r * 0.4, -D / 2), (x, ya - r * 0.4, D / 2 + 0.02), r, r, 20
                    ),
                )
    if base == "legs":
        lw = _thick(0.05, longest)
        xs = Wt / 2 - 0.06
        zs = D / 2 - 0.06
        for sx in (-1, 1):
            for sz in (-1, 1):
                a.add(
                    "leg",
                    P.cylinder(
                        (sx * xs, 0, sz * zs),
                        (sx * xs, y0 + 0.02, sz * zs),
                        lw / 2,
                        lw / 2 * 1.3,
                        10,
                    ),
                )
        if chaise:
            xz = side * xs
            a.add(
                "leg",
                P.cylinder(
                    (xz, 0, D / 2 + cd - 0.06),
                    (xz, y0 + 0.02, D / 2 + cd - 0.06),
                    lw / 2,
                    lw / 2 * 1.3,
                    10,
                ),
            )
    return a


# ----------------------------------------------------------------------------- bench


def bench(rng: np.random.Generator) -> Assembly:
    """Benches: slatted or plank seat; four legs, panel ends or A-frame ends; with or
    without a back (slatted or panel) and arms."""
    a = Assembly("bench")
    legs = a.choose(rng, ["four-legs", "panel-ends", "a-frame"])
    seat = a.choose(rng, ["slatted-seat", "plank-seat"])
    has_back = a.flag(rng, "back", 0.55)
    H = a.uniform(rng, "seat_height", 0.38, 0.5)
    BH = a.uniform(rng, "back_height", 0.3, 0.5) if has_back else 0.0
    # the overall height / length ratio is drawn directly (it fixes the seat's normalised height)
    L = (H + BH) / a.uniform(rng, "height_ratio", *((0.45, 0.58) if has_back else (0.27, 0.36)))
    D = a.uniform(rng, "depth_ratio", 0.22, 0.34) * L
    longest = max(L, H + BH)
    T = max(a.uniform(rng, "seat_thickness", 0.04, 0.08), 0.06 * longest)
    lw = max(a.uniform(rng, "leg_width", 0.04, 0.08), 0.04 * longest)
    y_under = H - T
    if seat == "slatted-seat":
        n = int(rng.integers(3, 6))
        a.params["n_seat_slats"] = float(n)
        sd = D / n
        for i in range(n):
            z = -D / 2 + (i + 0.5) * sd
            a.add("seat", P.box((L, T, sd * 0.85), (0, H - T / 2, z)))
        a.add("seat", P.box((L * 0.9, T, D * 0.9), (0, H - T * 1.5 + 0.005, 0)))  # cross battens
    else:
        a.add("seat", P.rounded_box((L, T, D), min(T / 3, 0.015), (0, H - T / 2, 0)))
    ex = L / 2 - a.uniform(rng, "leg_inset", 0.03, 0.2) * L
    if legs == "four-legs":
        for sx in (-1, 1):
            for sz in (-1, 1):
                a.add(
                    "leg",
                    P.beam(
                        (sx * ex, 0, sz * (D / 2 - lw)),
                        (sx * ex, y_under + 0.01, sz * (D / 2 - lw)),
                        lw,
                    ),
                )
        a.add("stretcher", P.box((2 * ex, lw * 0.7, lw * 0.7), (0, H * 0.25, 0)))
        for sx in (-1, 1):
            a.add("stretcher", P.box((lw * 0.7, lw * 0.7, D - 2 * lw), (sx * ex, H * 0.25, 0)))
    elif legs == "panel-ends":
        for sx in (-1, 1):
            a.add("leg", P.box((lw, y_under + 0.01, D * 0.9), (sx * ex, (y_under + 0.01) / 2, 0)))
    else:
        for sx in (-1, 1):
            for sz in (-1, 1):
                a.add(
                    "leg",
                    P.beam(
                        (sx * ex, 0, sz * D * 0.55), (sx * ex, y_under + 0.01, sz * D * 0.15), lw
                    ),
                )
            a.add("stretcher", P.box((lw, lw, D * 0.8), (sx * ex, H * 0.3, 0)))
    if has_back:
        tilt = a.uniform(rng, "back_tilt", 0.0, 0.3)
        bt = _thick(0.04, longest)
        z0 = -D / 2 + bt / 2
        style = a.choose(rng, ["slatted-back", "panel-back"])
        y_top = H + BH
        z_top = z0 - BH * np.tan(tilt)
        for sx in (-1, 1):
            a.add("back", P.beam((sx * ex, y_under, z0), (sx * ex, y_top, z_top), lw, bt))
            if legs == "panel-ends" or legs == "a-frame":
                pass
        if style == "slatted-back":
            n = int(rng.integers(2, 4))
            a.params["n_back_slats"] = float(n)
            sh = _thick(BH / (2 * n + 1), longest)
            for i in range(n):
                y = H + (i + 0.5) * BH / n + sh / 2
                z = z0 - (y - H) * np.tan(tilt)
                a.add("back", P.box((L * 0.98, sh, bt), (0, y, z)))
        else:
            corners = np.array(
                [
                    (-L * 0.49, H + 0.05, z0 - 0.05 * np.tan(tilt)),
                    (L * 0.49, H + 0.05, z0 - 0.05 * np.tan(tilt)),
                    (L * 0.49, y_top, z_top),
                    (-L * 0.49, y_top, z_top),
                ]
            )
            a.add("back", P.plate(corners, bt, (0, np.sin(tilt), np.cos(tilt))))
        if a.flag(rng, "arms", 0.5):
            ah = H + 0.22
            for sx in (-1, 1):
                x = sx * (ex + lw * 0.2)
                a.add("arm", P.box((lw, lw, D * 0.95), (x, ah, 0)))
                a.add("arm", P.beam((x, y_under, D / 2 - lw), (x, ah, D / 2 - lw), lw))
    return a


# ----------------------------------------------------------------------------- cabinet


def cabinet(rng: np.random.Generator) -> Assembly:
    """Cabinets: doors, drawers, drawers over doors, or open shelves; plinth, legs or
    nothing underneath; from low sideboards to tall wardrobes."""
    a = Assembly("cabinet")
    front = a.choose(rng, ["doors", "drawers", "drawers-over-doors", "open-shelves"])
    base = a.choose(rng, ["plinth", "legs", "flush"])
    kind = a.choose(rng, ["sideboard", "chest", "tall"])
    if kind == "sideboard":
        W, H = a.uniform(rng, "width", 1.0, 1.8), a.uniform(rng, "height", 0.5, 0.9)
    elif kind == "chest":
        W, H = a.uniform(rng, "width", 0.5, 0.9), a.uniform(rng, "height", 0.6, 1.1)
    else:
        W, H = a.uniform(rng, "width", 0.6, 1.2), a.uniform(rng, "height", 1.5, 2.1)
    D = a.uniform(rng, "depth", 0.35, 0.6)
    longest = max(W, H, D)
    t = _thick(0.025, longest)
    hb = {
        "plinth": a.uniform(rng, "plinth_height", 0.05, 0.12),
        "legs": a.uniform(rng, "leg_height", 0.1, 0.25),
        "flush": 0.0,
    }[base]
    y0, y1 = hb, H
    if base == "plinth":
        a.add("base", P.box((W - 0.04, hb + 0.01, D - 0.06), (0, (hb + 0.01) / 2, -0.01)))
    elif base == "legs":
        lw = _thick(0.04, longest)
        for sx in (-1, 1):
            for sz in (-1, 1):
                a.add(
                    "leg",
                    P.cylinder(
                        (sx * (W / 2 - 0.05), 0, sz * (D / 2 - 0.05)),
                        (sx * (W / 2 - 0.05), y0 + 0.01, sz * (D / 2 - 0.05)),
                        lw / 2,
                        lw / 2 * 1.2,
                        10,
                    ),
                )
    if front == "open-shelves":
        # a hollow carcass of panels with shelves
        for sx in (-1, 1):
            a.add("carcass", P.box((t, y1 - y0, D), (sx * (W / 2 - t / 2), (y0 + y1) / 2, 0)))
        a.add("carcass", P.box((W, t, D), (0, y0 + t / 2, 0)), P.box((W, t, D), (0, y1 - t / 2, 0)))
        a.add("carcass", P.box((W, y1 - y0, t), (0, (y0 + y1) / 2, -D / 2 + t / 2)))
        n = int(rng.integers(1, max(2, int((y1 - y0) / 0.35)) + 1))
        a.params["n_shelves"] = float(n)
        for i in range(n):
            y = y0 + (i + 1) * (y1 - y0) / (n + 1)
            a.add("shelf", P.box((W - t, t, D - t), (0, y, t / 2)))
        if W > 1.0 and a.flag(rng, "divider", 0.6):
            a.add("carcass", P.box((t, y1 - y0, D), (0, (y0 + y1) / 2, 0)))
        return a
    a.add("carcass", P.box((W, y1 - y0, D), (0, (y0 + y1) / 2, 0)))
    if a.flag(rng, "top-overhang", 0.4):
        a.add("top", P.box((W + 0.04, _thick(0.03, longest), D + 0.03), (0, y1, 0.015)))
    ft = _thick(0.02, longest) * 0.8
    zf = D / 2 + ft / 2 - 0.003
    gap = 0.012
    hs = _thick(0.02, longest)

    def drawers(ya: float, yb: float, cols: int) -> None:
        n = max(1, int(round((yb - ya) / rng.uniform(0.15, 0.3))))
        a.params["n_drawers"] = a.params.get("n_drawers", 0.0) + float(n * cols)
        dh = (yb - ya) / n
        cw = W / cols
        for c in range(cols):
            for i in range(n):
                y = ya + (i + 0.5) * dh
                x = -W / 2 + (c + 0.5) * cw
                a.add("drawer", P.box((cw - gap, dh - gap, ft), (x, y, zf)))
                a.add(
                    "handle",
                    P.box(
                        (min(0.12, cw * 0.3), hs, hs * 1.5),
                        (x, y + dh * 0.2, zf + ft / 2 + hs * 0.6),
                    ),
                )

    def doors(ya: float, yb: float) -> None:
        n = 1 if W < 0.6 else (2 if W < 1.3 else 3)
        a.params["n_doors"] = float(n)
        dw = W / n
        for i in range(n):
            x = -W / 2 + (i + 0.5) * dw
            a.add("door", P.box((dw - gap, yb - ya - gap, ft), (x, (ya + yb) / 2, zf)))
            side = 1 if i % 2 == 0 else -1
            hx = x + side * (dw / 2 - 0.06)
            a.add(
                "handle",
                P.box(
                    (hs, min(0.2, (yb - ya) * 0.3), hs * 1.5),
                    (hx, (ya + yb) / 2 + (yb - ya) * 0.2, zf + ft / 2 + hs * 0.6),
                ),
            )

    cols = 2 if W > 1.1 and rng.random() < 0.5 else 1
    if front == "doors":
        doors(y0, y1)
    elif front == "drawers":
        drawers(y0, y1, cols)
    else:
        split = y1 - a.uniform(rng, "drawer_band", 0.15, 0.35) * (y1 - y0)
        drawers(split, y1, cols)
        doors(y0, split)
    return a
