"""Object families: lamp, display, loudspeaker, telephone, rifle (units: metres, ground y = 0).

Front faces +z: screens, drivers, keypads face +z; a rifle's muzzle points to +z; an arm
lamp reaches towards +z.
"""

from __future__ import annotations

import numpy as np

from svr.data.procedural import primitives as P
from svr.data.procedural.assembly import Assembly

MIN_FRACTION = 0.03  # thinnest member / longest side (survives 32^3 voxelisation)


def _thick(value: float, longest: float) -> float:
    return max(float(value), MIN_FRACTION * longest)


# ----------------------------------------------------------------------------- lamp


def _shade(
    a: Assembly,
    top: np.ndarray,
    axis: np.ndarray,
    size: float,
    style: str,
) -> None:
    """A lampshade hanging from `top` along unit `axis` (pointing to the light opening)."""
    axis = axis / np.linalg.norm(axis)
    if style == "cone-shade":
        a.add("shade", P.cylinder(top, top + axis * size * 0.8, size * 0.25, size * 0.6, 24))
    elif style == "drum-shade":
        a.add("shade", P.cylinder(top, top + axis * size * 0.8, size * 0.5, size * 0.55, 24))
    elif style == "globe-shade":
        a.add("shade", P.sphere(top + axis * size * 0.42, size * 0.42, 24))
    else:  # dome: a squashed hemisphere-like cap
        a.add("shade", P.cylinder(top, top + axis * size * 0.3, size * 0.15, size * 0.45, 24))
        a.add(
            "shade",
            P.cylinder(
                top + axis * size * 0.28, top + axis * size * 0.6, size * 0.45, size * 0.6, 24
            ),
        )


def lamp(rng: np.random.Generator) -> Assembly:
    """Lamps: floor lamp (shade or torchiere bowl), desk lamp, articulated arm lamp, or
    pendant; disc or square bases; cone, drum, dome or globe shades."""
    a = Assembly("lamp")
    kind = a.choose(rng, ["floor", "desk", "arm", "pendant"], p=[0.32, 0.5, 0.12, 0.06])
    shade_style = a.choose(
        rng, ["cone-shade", "drum-shade", "dome-shade", "globe-shade"], p=[0.3, 0.3, 0.2, 0.2]
    )
    if kind == "floor":
        H = a.uniform(rng, "height", 1.4, 1.7)
        longest = H
        # sizes relative to the height, so that they vary after normalisation
        pr = a.uniform(rng, "pole_ratio", 0.03, 0.06) * H / 2
        base_r = a.uniform(rng, "base_ratio", 0.09, 0.15) * H
        base_t = a.uniform(rng, "base_thickness_ratio", 0.03, 0.07) * H
        base_style = a.choose(rng, ["disc-base", "tripod-base"])
        if base_style == "disc-base":
            a.add("base", P.cylinder((0, 0, 0), (0, base_t, 0), base_r, base_r * 0.9, 24))
        else:
            for k in range(3):
                t = 2 * np.pi * k / 3
                a.add(
                    "base",
                    P.cylinder(
                        (base_r * 1.6 * np.cos(t), 0, base_r * 1.6 * np.sin(t)),
                        (0, H * 0.35, 0),
                        pr,
                        pr,
                        8,
                    ),
                )
        head = a.choose(rng, ["shade-head", "torchiere"], p=[0.82, 0.18])
        if head == "torchiere":
            size = a.uniform(rng, "shade_ratio", 0.25, 0.42) * H
            bowl = a.uniform(rng, "bowl_ratio", 0.05, 0.12) * H
            a.add("pole", P.cylinder((0, 0, 0), (0, H - bowl + 0.02, 0), pr, pr, 12))
            a.add("shade", P.cylinder((0, H - bowl, 0), (0, H, 0), size * 0.15, size * 0.5, 24))
        else:
            size = a.uniform(rng, "shade_ratio", 0.26, 0.34) * H
            a.add("pole", P.cylinder((0, 0, 0), (0, H - size * 0.5, 0), pr, pr, 12))
            _shade(a, np.array([0, H, 0.0]), np.array([0, -1.0, 0]), size, shade_style)
    elif kind == "desk":
        H = a.uniform(rng, "height", 0.35, 0.6)
        size = a.uniform(rng, "shade_ratio", 0.5, 0.68) * H
        longest = max(H, size)
        pr = a.uniform(rng, "pole_ratio", 0.05, 0.12) * H / 2
        base_style = a.choose(rng, ["disc-base", "square-base", "vase-base"])
        bw = a.uniform(rng, "base_ratio", 0.25, 0.35) * H
        if base_style == "disc-base":
            a.add("base", P.cylinder((0, 0, 0), (0, _thick(0.025, longest), 0), bw, bw * 0.9, 24))
        elif base_style == "square-base":
            a.add(
                "base",
                P.rounded_box(
                    (bw * 1.8, _thick(0.03, longest), bw * 1.8),
                    0.01,
                    (0, _thick(0.03, longest) / 2, 0),
                ),
            )
        else:
            prof = np.array(
                [
                    (0, 0),
                    (bw * 0.5, 0),
                    (bw * 0.8, H * 0.15),
                    (bw * 0.7, H * 0.35),
                    (pr * 1.5, H * 0.45),
                    (0, H * 0.45),
                ]
            )
            a.add("base", P.revolve_profile(prof, 24))
        a.add("pole", P.cylinder((0, 0, 0), (0, H - size * 0.3, 0), pr, pr, 12))
        _shade(a, np.array([0, H, 0.0]), np.array([0, -1.0, 0]), size, shade_style)
    elif kind == "arm":
        l1 = a.uniform(rng, "lower_arm", 0.35, 0.45)
        l2 = a.uniform(rng, "upper_arm", 0.35, 0.45)
        a1 = np.deg2rad(a.uniform(rng, "lower_angle_deg", 64, 78))  # from horizontal, leaning back
        a2 = np.deg2rad(a.uniform(rng, "upper_angle_deg", -8, 12))
        longest = l1 + l2
        ar = _thick(0.02, longest) / 2
        base_style = a.choose(rng, ["disc-base", "clamp-base"])
        bw = a.uniform(rng, "base_size", 0.1, 0.16)
        z_base = -0.1
        if base_style == "disc-base":
            a.add(
                "base",
                P.cylinder((0, 0, z_base), (0, _thick(0.03, longest), z_base), bw, bw * 0.9, 24),
            )
            y0 = _thick(0.03, longest)
        else:
            a.add(
                "base",
                P.box(
                    (bw, _thick(0.06, longest), bw * 1.2), (0, _thick(0.06, longest) / 2, z_base)
                ),
            )
            a.add(
                "base",
                P.cylinder(
                    (0, 0, z_base),
                    (0, _thick(0.06, longest) + 0.05, z_base),
                    ar * 1.5,
                    ar * 1.5,
                    12,
                ),
            )
            y0 = _thick(0.06, longest) + 0.05
        p0 = np.array([0, y0 - 0.005, z_base])
        p1 = p0 + l1 * np.array([0, np.sin(a1), -np.cos(a1)])
        p2 = p1 + l2 * np.array([0, np.sin(a2), np.cos(a2)])
        for dx in (-ar * 1.1, ar * 1.1):
            off = np.array([dx, 0, 0])
            a.add(
                "arm",
                P.cylinder(p0 + off, p1 + off, ar, ar, 10),
                P.cylinder(p1 + off, p2 + off, ar, ar, 10),
            )
        a.add(
            "joint",
            P.cylinder(p1 - (ar * 2.5, 0, 0), p1 + (ar * 2.5, 0, 0), ar * 1.8, ar * 1.8, 12),
        )
        size = a.uniform(rng, "shade_ratio", 0.16, 0.22) * longest
        tilt = np.deg2rad(a.uniform(rng, "shade_tilt_deg", 35, 65))
        axis = np.array([0, -np.sin(tilt), np.cos(tilt)])
        _shade(
            a,
            p2 - axis * size * 0.05,
            axis,
            size,
            "cone-shade" if shade_style == "drum-shade" else shade_style,
        )
    else:  # pendant
        cord = a.uniform(rng, "cord_length", 0.3, 0.9)
        size = a.uniform(rng, "shade_size", 0.25, 0.5)
        longest = cord + size
        cr = _thick(0.015, longest) / 2
        n = int(rng.integers(1, 4))
        a.params["n_shades"] = float(n)
        top = cord + size * 0.6
        cw = a.uniform(rng, "canopy_radius", 0.06, 0.1)
        if n == 1:
            a.add("canopy", P.cylinder((0, top, 0), (0, top + 0.04, 0), cw * 0.8, cw, 20))
        else:
            bar = (n - 1) * size * 1.1 + 0.1
            a.add("canopy", P.rounded_box((bar, 0.04, 0.1), 0.015, (0, top + 0.02, 0)))
        for k in range(n):
            x = 0.0 if n == 1 else (k - (n - 1) / 2) * size * 1.1
            ck = cord * (1 - 0.2 * (k % 2))
            a.add("cord", P.cylinder((x, top + 0.01, 0), (x, top - ck - 0.02, 0), cr, cr, 8))
            _shade(
                a,
                np.array([x, top - ck, 0]),
                np.array([0, -1.0, 0]),
                size * (1 if n == 1 else 0.7),
                shade_style,
            )
    return a


# ----------------------------------------------------------------------------- display


def display(rng: np.random.Generator) -> Assembly:
    """Displays: monitor on a stand (plate, V or round base), TV on a pedestal or feet,
    wall-mounted screen, or CRT; flat or curved panels, optionally tilted back."""
    a = Assembly("display")
    kind = a.choose(rng, ["monitor", "tv", "wall-screen", "crt"], p=[0.35, 0.3, 0.15, 0.2])
    if kind == "crt":
        W = a.uniform(rng, "width", 0.38, 0.5)
        H = W * a.uniform(rng, "aspect", 0.78, 0.9)
        D = a.uniform(rng, "depth", 0.35, 0.5)
        foot = _thick(0.03, max(W, D))
        a.add("base", P.box((W * 0.5, foot, D * 0.5), (0, foot / 2, -D * 0.3)))
        y0 = foot - 0.005
        a.add("bezel", P.rounded_box((W, H, 0.08), 0.015, (0, y0 + H / 2, 0)))
        back = []
        for sx in (-1, 1):
            for sy in (-1, 1):
                back += [
                    (sx * W * 0.46, y0 + H / 2 + sy * H * 0.46, -0.03),
                    (sx * W * 0.25, y0 + H / 2 + sy * H * 0.25 - 0.03, -D),
                ]
        a.add("housing", P.hull_points(np.array(back)))
        a.add("screen", P.rounded_box((W * 0.82, H * 0.78, 0.02), 0.02, (0, y0 + H / 2, 0.04)))
        return a
    if kind == "monitor":
        W = a.uniform(rng, "width", 0.45, 0.75)
    elif kind == "tv":
        W = a.uniform(rng, "width", 0.9, 1.5)
    else:
        W = a.uniform(rng, "width", 0.8, 1.4)
    # 4:3 and 5:4 monitors (common among real displays) to 21:9 screens
    H = W * a.uniform(rng, "aspect", *((0.45, 0.8) if kind == "monitor" else (0.42, 0.75)))
    longest = W
    T = _thick(a.uniform(rng, "thickness", 0.02, 0.05), longest)
    back = a.flag(rng, "back-bulge", 0.5)
    if kind == "monitor":
        stand_h = a.uniform(rng, "stand_height", 0.08, 0.2)
        bw = a.uniform(rng, "base_width", 0.18, 0.3)
        bt = _thick(0.015, longest)
        base_style = a.choose(rng, ["plate-base", "v-base", "round-base"])
        nt = _thick(0.02, longest)
        zn = -T / 2 - nt / 2 + 0.004
        if base_style == "plate-base":
            a.add("base", P.rounded_box((bw, bt, bw * 0.75), 0.01, (0, bt / 2, zn)))
        elif base_style == "round-base":
            a.add("base", P.cylinder((0, 0, zn), (0, bt, zn), bw * 0.5, bw * 0.45, 24))
        else:
            for sx in (-1, 1):
                a.add(
                    "base",
                    P.beam(
                        (0, bt / 2, zn - 0.03),
                        (sx * bw * 0.55, bt / 2, zn + bw * 0.35),
                        _thick(0.03, longest),
                        bt,
                    ),
                )
        y_panel = stand_h + bt
        nw = _thick(a.uniform(rng, "neck_width", 0.03, 0.07), longest)
        a.add("neck", P.box((nw, y_panel + H * 0.4, nt), (0, (y_panel + H * 0.4) / 2, zn)))
    elif kind == "tv":
        stand = a.choose(rng, ["pedestal", "feet"])
        bt = _thick(0.02, longest)
        if stand == "pedestal":
            bw = a.uniform(rng, "base_width", 0.25, 0.45) * W
            a.add("base", P.rounded_box((bw, bt, 0.22), 0.01, (0, bt / 2, 0)))
            nh = a.uniform(rng, "neck_height", 0.04, 0.1)
            a.add(
                "neck",
                P.box(
                    (_thick(0.06, longest), nh + 0.03, _thick(0.03, longest)),
                    (0, bt + nh / 2, -0.02),
                ),
            )
            y_panel = bt + nh
        else:
            fx = W * a.uniform(rng, "feet_spread", 0.3, 0.45)
            nh = a.uniform(rng, "feet_height", 0.03, 0.08)
            for sx in (-1, 1):
                a.add(
                    "base",
                    P.beam((sx * fx, 0, 0.1), (sx * fx, nh + 0.04, 0.0), _thick(0.03, longest)),
                )
                a.add(
                    "base",
                    P.beam((sx * fx, 0, -0.08), (sx * fx, nh + 0.04, 0.0), _thick(0.03, longest)),
                )
            y_panel = nh
    else:
        y_panel = 0.0
        if a.flag(rng, "wall-mount", 0.6):
            a.add("mount", P.box((W * 0.3, H * 0.3, 0.06), (0, H / 2, -T / 2 - 0.025)))
    # the panel is built around its centre, then curved, tilted and placed
    curved = a.flag(rng, "curved", 0.25)
    bez = _thick(a.uniform(rng, "bezel", 0.01, 0.04), longest) * 0.5
    pieces: list[tuple[str, P.Manifold]] = []
    if curved:
        pieces.append(("panel", P.box((W, H, T)).refine(16)))
        pieces.append(
            ("screen", P.box((W - 2 * bez, H - 2 * bez, 0.006), (0, 0, T / 2)).refine(16))
        )
    else:
        pieces.append(("panel", P.rounded_box((W, H, T), min(T / 2.5, 0.01))))
        pieces.append(("screen", P.box((W - 2 * bez, H - 2 * bez, 0.006), (0, 0, T / 2))))
    if back:
        depth = _thick(a.uniform(rng, "bulge_depth", 0.02, 0.06), longest)
        pts = []
        for sx in (-1, 1):
            for sy in (-1, 1):
                pts += [
                    (sx * W * 0.35, sy * H * 0.35, -T / 2 + 0.005),
                    (sx * W * 0.22, sy * H * 0.22, -T / 2 - depth),
                ]
        housing = P.hull_points(np.array(pts))
        pieces.append(("housing", housing.refine(4) if curved else housing))
    if curved:
        bow = a.uniform(rng, "curvature_depth", 0.03, 0.08) * W

        def bend(v: np.ndarray) -> np.ndarray:
            out = np.array(v, dtype=np.float64)
            out[:, 2] += bow * (2 * out[:, 0] / W) ** 2
            return out

        pieces = [(name, solid.warp_batch(bend)) for name, solid in pieces]
    tilt_max = {"monitor": 14.0, "tv": 6.0}.get(kind, 0.0)
    tilt = np.deg2rad(a.uniform(rng, "tilt_deg", 0.0, tilt_max)) if tilt_max else 0.0
    # monitors pivot where the neck meets the back, TVs at the bottom edge
    pivot = np.array([0.0, -0.2 * H, -T / 2]) if kind == "monitor" else np.array([0.0, -H / 2, 0.0])
    rot = P.rotation_matrix((1, 0, 0), -tilt)
    place = np.array([0.0, y_panel + H / 2, 0.0]) + pivot - rot @ pivot
    for name, solid in pieces:
        a.add(name, P.transform(solid, rot, place))
    if kind == "monitor":
        # a hinge block keeps the tilted panel fused to the neck
        a.add(
            "neck", P.box((nw * 1.4, 0.06, 0.05), (0, y_panel + H / 2 + pivot[1], pivot[2] - 0.01))
        )
    return a


# ----------------------------------------------------------------------------- loudspeaker


def _driver(a: Assembly, center: np.ndarray, r: float, z_face: float, lean: float = 0.0) -> None:
    """A driver on a front face through (x, y, z_face) leaning back by `lean` radians:
    surround ring plus dust-cap dome, both facing the baffle's normal."""
    ring = P.cylinder((0, 0, -0.008), (0, 0, 0.012), r, r * 0.92, 24)
    cap = P.cylinder((0, 0, 0.01), (0, 0, 0.012 + r * 0.25), r * 0.4, r * 0.2, 16)
    rot = P.rotation_matrix((1, 0, 0), -lean)
    at = (center[0], center[1], z_face)
    a.add("driver", P.transform(ring, rot, at))
    a.add("cone", P.transform(cap, rot, at))


def loudspeaker(rng: np.random.Generator) -> Assembly:
    """Loudspeakers: bookshelf box, floor tower, subwoofer cube, wide centre-channel box
    (cabinets square or rounded, optionally tapered with a leaning baffle; drivers bare or
    behind a grille panel), round (sphere or pill) on a stand, or a cylindrical smart speaker;
    1-4 drivers on the front."""
    a = Assembly("loudspeaker")
    kind = a.choose(
        rng,
        ["bookshelf", "tower", "subwoofer", "center", "round", "cylinder"],
        p=[0.3, 0.22, 0.14, 0.1, 0.12, 0.12],
    )
    if kind in ("bookshelf", "tower", "subwoofer", "center"):
        if kind == "bookshelf":
            W, H, D = (
                a.uniform(rng, "width", 0.16, 0.26),
                a.uniform(rng, "height", 0.26, 0.42),
                a.uniform(rng, "depth", 0.18, 0.36),
            )
        elif kind == "center":
            W = a.uniform(rng, "width", 0.4, 0.7)
            H = W / a.uniform(rng, "width_ratio", 1.8, 3.2)
            D = a.uniform(rng, "depth", 0.16, 0.3)
        elif kind == "tower":
            W, H, D = (
                a.uniform(rng, "width", 0.18, 0.28),
                a.uniform(rng, "height", 0.8, 1.15),
                a.uniform(rng, "depth", 0.22, 0.35),
            )
        else:
            s = a.uniform(rng, "size", 0.3, 0.45)
            W, H, D = (
                s,
                s * a.uniform(rng, "aspect", 0.8, 1.25),
                s * a.uniform(rng, "depth_ratio", 0.75, 1.25),
            )
        longest = max(W, H, D)
        y0 = 0.0
        if kind == "tower":
            feet = a.choose(rng, ["plinth", "spikes", "flush"])
            if feet == "plinth":
                a.add(
                    "plinth",
                    P.box(
                        (W * 1.3, _thick(0.03, longest), D * 1.15),
                        (0, _thick(0.03, longest) / 2, 0),
                    ),
                )
                y0 = _thick(0.03, longest) - 0.005
            elif feet == "spikes":
                for sx in (-1, 1):
                    for sz in (-1, 1):
                        a.add(
                            "plinth",
                            P.cylinder(
                                (sx * W * 0.38, 0, sz * D * 0.38),
                                (sx * W * 0.38, 0.06, sz * D * 0.38),
                                0.004 + MIN_FRACTION * longest / 2 * 0.5,
                                0.02,
                                10,
                            ),
                        )
                y0 = 0.055
        round_edges = a.flag(rng, "rounded", 0.5)
        r_edge = min(W, H, D) * a.uniform(rng, "edge_radius", 0.08, 0.2) if round_edges else 0.004
        # the cabinet may narrow towards the top and its front baffle lean back
        tw = a.uniform(rng, "top_width_ratio", 0.65, 1.0) if rng.random() < 0.5 else 1.0
        td = a.uniform(rng, "top_depth_ratio", 0.6, 1.0) if rng.random() < 0.5 else 1.0
        corners = []
        for y, w, d in ((y0 + r_edge, W, D), (y0 + H - r_edge, W * tw, D * td)):
            for sx in (-1, 1):
                for sz in (-1, 1):
                    zc = sz * (d / 2 - r_edge) - (D - d) / 2
                    corners.append(P.sphere((sx * (w / 2 - r_edge), y, zc), r_edge, 8))
        a.add("cabinet", P.Manifold.batch_hull(corners))

        def z_front(y: float) -> float:
            return D / 2 - (y - y0) / H * (D - D * td) - 0.004

        def x_half(y: float) -> float:
            return (W - (y - y0) / H * (W - W * tw)) / 2

        zf = z_front(y0)
        lean = float(np.arctan2(D - D * td, H))
        if kind != "center" and a.flag(rng, "grille", 0.3):
            # a grille panel covers the baffle and hides the drivers
            m = max(0.04 * H, 0.5 * r_edge)
            ya, yb = y0 + m, y0 + H - m
            corners = np.array(
                [
                    (-0.92 * x_half(ya), ya, z_front(ya)),
                    (0.92 * x_half(ya), ya, z_front(ya)),
                    (0.92 * x_half(yb), yb, z_front(yb)),
                    (-0.92 * x_half(yb), yb, z_front(yb)),
                ]
            )
            tg = _thick(0.012, longest)
            a.add("grille", P.plate(corners, tg, (0.0, np.sin(lean), np.cos(lean))))
        elif kind == "center":
            # woofer - tweeter - woofer side by side
            yc = y0 + H / 2
            rw = min(0.36 * H, 0.15 * W)
            for x in (-0.28 * W, 0.28 * W):
                _driver(a, np.array([x, yc]), rw, z_front(yc), lean)
            _driver(a, np.array([0.0, yc]), 0.45 * rw, z_front(yc), lean)
        elif kind == "subwoofer":
            yc = y0 + H / 2
            _driver(a, np.array([0, yc]), x_half(yc) * 0.8, z_front(yc), lean)
        else:
            n = 2 if kind == "bookshelf" else int(rng.integers(3, 5))
            if kind == "bookshelf" and a.flag(rng, "port", 0.4):
                a.add(
                    "cabinet",
                    P.cylinder(
                        (0, y0 + H * 0.12, zf - 0.01),
                        (0, y0 + H * 0.12, zf + 0.01),
                        W * 0.12,
                        W * 0.12,
                        16,
                    ),
                )
            a.params["n_drivers"] = float(n)
            ys = np.linspace(
                y0 + H * (0.82 if kind == "bookshelf" else 0.9),
                y0 + H * (0.42 if kind == "bookshelf" else 0.35),
                n,
            )
            for i, y in enumerate(ys):
                r = 2 * x_half(y) * (0.18 if i == 0 else 0.38)
                _driver(a, np.array([0, y]), r, z_front(y), lean)
        return a
    if kind == "round":
        R = a.uniform(rng, "radius", 0.1, 0.18)
        stand = a.choose(rng, ["cone-stand", "pole-stand"])
        sh = a.uniform(rng, "stand_height", 0.05, 0.4 if stand == "pole-stand" else 0.12)
        longest = max(2 * R, sh + 2 * R)
        if stand == "cone-stand":
            a.add("stand", P.cylinder((0, 0, 0), (0, sh + R * 0.3, 0), R * 0.6, R * 0.15, 20))
        else:
            a.add(
                "stand", P.cylinder((0, 0, 0), (0, _thick(0.02, longest), 0), R * 0.8, R * 0.75, 20)
            )
            a.add(
                "stand",
                P.cylinder(
                    (0, 0, 0),
                    (0, sh + R * 0.3, 0),
                    _thick(0.02, longest) / 2,
                    _thick(0.02, longest) / 2,
                    10,
                ),
            )
        elong = a.uniform(rng, "elongation", 1.0, 1.4)
        a.add("cabinet", P.ellipsoid((0, sh + R, 0), (R, R, R * elong), 20))
        _driver(a, np.array([0, sh + R]), R * 0.6, R * elong * 0.85)
        return a
    # cylinder (smart speaker)
    R = a.uniform(rng, "radius", 0.05, 0.09)
    H = a.uniform(rng, "height", 0.1, 0.3)
    a.add("cabinet", P.cylinder((0, 0, 0), (0, H, 0), R, R * a.uniform(rng, "taper", 0.8, 1.0), 24))
    a.add("top", P.cylinder((0, H - 0.005, 0), (0, H + 0.01, 0), R * 0.8, R * 0.7, 24))
    if a.flag(rng, "grille-ring", 0.5):
        a.add("driver", P.cylinder((0, H * 0.3, 0), (0, H * 0.45, 0), R * 1.06, R * 1.06, 24))
    # a front driver (the cabinet's radius at mid-height sets the baffle position)
    taper = a.params["taper"]
    yd = H * a.uniform(rng, "driver_height", 0.55, 0.7)
    r_here = R * (1 - (1 - taper) * yd / H)
    _driver(a, np.array([0.0, yd]), min(r_here * 0.6, H * 0.3), r_here * 0.9)
    return a


# ----------------------------------------------------------------------------- telephone


def _keypad(
    a: Assembly,
    x0: float,
    y0: float,
    w: float,
    h: float,
    z: float,
    rows: int = 4,
    cols: int = 3,
    normal_y: bool = False,
) -> None:
    """A rows x cols grid of buttons in the rectangle centred (x0, y0) of size (w, h)."""
    bw, bh = w / cols * 0.7, h / rows * 0.6
    for i in range(rows):
        for j in range(cols):
            x = x0 + (j - (cols - 1) / 2) * w / cols
            y = y0 + (i - (rows - 1) / 2) * h / rows
            if normal_y:
                a.add("button", P.box((bw, 0.012, bh), (x, z, y)))
            else:
                a.add("button", P.box((bw, bh, 0.012), (x, y, z)))


def telephone(rng: np.random.Generator) -> Assembly:
    """Telephones: smartphone slab (most often; upright, on a stand, or in an open flip case;
    single lens, camera block or flush camera), candybar
    phone with keypad and antenna, open flip phone, open slider phone (portrait or landscape
    keyboard), desk phone with handset, or cordless handset in its dock."""
    a = Assembly("telephone")
    kind = a.choose(
        rng,
        ["smartphone", "bar-phone", "flip-phone", "slider-phone", "desk-phone", "cordless"],
        # real ShapeNet telephones are mostly smartphone slabs (every cluster mean of the
        # what3d release is one): they dominate, open and docked handsets are rarer
        p=[0.55, 0.12, 0.08, 0.06, 0.12, 0.07],
    )
    # work in units where the phone height is about 1 (so 0.03 is thin enough)
    if kind == "smartphone":
        H = 1.0
        W = a.uniform(rng, "width", 0.4, 0.64)
        T = a.uniform(rng, "thickness", 0.045, 0.12)
        pose = a.choose(rng, ["upright", "on-stand", "flip-case"], p=[0.76, 0.1, 0.14])
        corner = a.uniform(rng, "corner", 0.02, 0.16)
        bez = a.uniform(rng, "bezel", 0.02, 0.1)
        # the phone's pieces in its own frame (bottom edge on y = 0), posed below
        pieces: list[tuple[str, P.Manifold]] = [
            ("body", P.rounded_box((W, H, T), corner, (0, H / 2, 0), 8)),
            ("screen", P.box((W - 0.04, H - 2 * bez, 0.01), (0, H / 2, T / 2))),
            ("button", P.box((0.03, 0.14, 0.03), (W / 2, H * 0.7, 0))),
        ]
        cam = a.choose(rng, ["single-camera", "camera-block", "flush-camera"], p=[0.4, 0.3, 0.3])
        if cam == "single-camera":
            lens = P.cylinder(
                (-W * 0.25, H * 0.88, -T / 2 + 0.005), (-W * 0.25, H * 0.88, -T / 2 - 0.02), 0.05
            )
            pieces.append(("camera", lens))
        elif cam == "camera-block":
            block = P.rounded_box(
                (W * 0.45, W * 0.45, 0.04), 0.03, (-W * 0.22, H - W * 0.3, -T / 2)
            )
            pieces.append(("camera", block))
        if a.flag(rng, "home-button", 0.4):
            r_b = max(0.04, bez * 0.35)
            knob = P.cylinder((0, bez * 0.5, T / 2 - 0.005), (0, bez * 0.5, T / 2 + 0.015), r_b)
            pieces.append(("button", knob))
        if pose == "flip-case":
            # a cover hinged at the left edge, swung open by `opening` degrees
            tc = a.uniform(rng, "cover_thickness", 0.03, 0.05)
            opening = np.deg2rad(a.uniform(rng, "opening_deg", 110, 180))
            hinge = np.array([-W / 2, 0.0, T / 2])
            cover = P.box((W, H, tc), (W / 2, H / 2, tc / 2))
            rot = P.rotation_matrix((0, 1, 0), -opening)
            pieces.append(("case", P.transform(cover, rot, hinge)))
            pieces.append(("case", P.cylinder(hinge, hinge + (0, H, 0), tc, tc, 12)))
        rot = np.eye(3)
        offset = np.zeros(3)
        if pose == "on-stand":
            tilt = np.deg2rad(a.uniform(rng, "tilt_deg", 10, 28))
            rot = P.rotation_matrix((1, 0, 0), -tilt)
            pivot = np.array([0.0, 0.0, -T / 2])
            offset = pivot - rot @ pivot + np.array([0.0, 0.04, 0.0])
            # the strut's end box (0.35 W deep) reaches just into the phone's back
            top = rot @ np.array([0.0, 0.45 * H, -T / 2 - 0.15 * W]) + offset
            foot = np.array([0.0, 0.0, top[2] - 0.3 * H])
            a.add("stand", P.beam(top, foot, W * 0.35, 0.05))
            # a ledge that holds the phone's (lifted, tilted) bottom edge
            lip_top = 0.04 + T * np.sin(tilt) + 0.04
            z0, z1 = -T / 2 - 0.02, -T / 2 + T * np.cos(tilt) + 0.08
            a.add("stand", P.box_between((-W * 0.4, 0.0, z0), (W * 0.4, lip_top, z1)))
        for name, solid in pieces:
            a.add(name, P.transform(solid, rot, offset))
        return a
    if kind == "bar-phone":
        H = 1.0
        W = a.uniform(rng, "width", 0.36, 0.46)
        T = a.uniform(rng, "thickness", 0.12, 0.18)
        a.add("body", P.rounded_box((W, H, T), 0.06, (0, H / 2, 0), 8))
        a.add("screen", P.box((W * 0.75, H * 0.3, 0.02), (0, H * 0.72, T / 2)))
        _keypad(a, 0, H * 0.28, W * 0.8, H * 0.38, T / 2 + 0.004)
        if a.flag(rng, "antenna", 0.5):
            a.add(
                "antenna",
                P.cylinder(
                    (W * 0.3, H - 0.05, 0),
                    (W * 0.3, H + a.uniform(rng, "antenna_length", 0.1, 0.25), 0),
                    0.04,
                    0.03,
                    12,
                ),
            )
        return a
    if kind == "flip-phone":
        W = a.uniform(rng, "width", 0.4, 0.5)
        h1 = a.uniform(rng, "lower_height", 0.45, 0.55)
        h2 = a.uniform(rng, "upper_height", 0.42, 0.5)
        T = a.uniform(rng, "thickness", 0.06, 0.09)
        open_deg = a.uniform(rng, "open_angle_deg", 140, 175)
        a.add("body", P.rounded_box((W, h1, T), 0.04, (0, h1 / 2, 0), 8))
        _keypad(a, 0, h1 * 0.45, W * 0.8, h1 * 0.6, T / 2 + 0.004)
        hinge = np.array([0, h1, -T * 0.1])
        a.add(
            "hinge", P.cylinder(hinge - (W / 2, 0, 0), hinge + (W / 2, 0, 0), T * 0.6, T * 0.6, 16)
        )
        lean = np.deg2rad(180 - open_deg)
        rot = P.rotation_matrix((1, 0, 0), -lean)
        lid = P.rounded_box((W, h2, T), 0.04, (0, h2 / 2, 0), 8)
        scr = P.box((W * 0.8, h2 * 0.6, 0.02), (0, h2 * 0.55, T / 2))
        a.add("lid", P.transform(lid, rot, hinge))
        a.add("screen", P.transform(scr, rot, hinge))
        return a
    if kind == "slider-phone":
        # two slabs: the screen half slid up over the keyboard half
        W = a.uniform(rng, "width", 0.45, 0.6)
        h = a.uniform(rng, "half_height", 0.62, 0.75)
        T = a.uniform(rng, "thickness", 0.05, 0.08)
        slide = a.uniform(rng, "slide", 0.3, 0.45)
        landscape = a.flag(rng, "landscape", 0.4)
        if landscape:
            W, h = h * 1.1, W * 0.9
            slide = min(slide, 0.6 * h)
        a.add("body", P.rounded_box((W, h, T), 0.04, (0, h / 2, -T / 2), 8))
        a.add("lid", P.rounded_box((W, h, T), 0.04, (0, h / 2 + slide, T / 2 - 0.005), 8))
        a.add("screen", P.box((W * 0.85, h * 0.7, 0.01), (0, h / 2 + slide, T - 0.007)))
        rows, cols = (3, 8) if landscape else (4, 3)
        _keypad(a, 0, slide * 0.5, W * 0.85, slide * 0.8, 0.004, rows, cols)
        return a
    if kind == "desk-phone":
        W = a.uniform(rng, "width", 0.8, 1.0)
        D = a.uniform(rng, "depth", 0.7, 0.95)
        hf, hb = a.uniform(rng, "front_height", 0.08, 0.14), a.uniform(rng, "back_height", 0.2, 0.3)
        prof = np.array([(D / 2, 0), (D / 2, hf), (-D / 2, hb), (-D / 2, 0)])
        a.add("body", P.extrude_profile(prof, W, axis="x"))
        slope = np.arctan2(hb - hf, D)
        # handset lies on the left, along z, on the back half
        hx = -W * 0.27
        hs_len = D * 0.95

        def y_top(z: float) -> float:
            return hf + (D / 2 - z) * np.tan(slope)

        z_a, z_b = -hs_len * 0.35, hs_len * 0.3
        a.add(
            "handset",
            P.capsule((hx, y_top(z_a) + 0.03, z_a), (hx, y_top(z_b) + 0.03, z_b), 0.05, 10),
        )
        for zz in (-hs_len * 0.4, hs_len * 0.35):
            a.add("handset", P.ellipsoid((hx, y_top(zz) + 0.05, zz), (0.1, 0.06, 0.1), 12))
        # keypad on the sloped top, right half
        rot = P.rotation_matrix((1, 0, 0), slope)
        for i in range(4):
            for j in range(3):
                x = W * 0.08 + j * W * 0.1
                z = D * 0.25 - i * D * 0.13
                y = hf + (D / 2 - z) * np.tan(slope)
                a.add(
                    "button",
                    P.transform(P.box((W * 0.07, 0.04, D * 0.08), (0, 0, 0)), rot, (x, y, z)),
                )
        if a.flag(rng, "display", 0.5):
            a.add(
                "screen",
                P.transform(
                    P.box((W * 0.35, 0.04, D * 0.15), (0, 0, 0)),
                    rot,
                    (W * 0.18, hf + (D / 2 + D * 0.3) * np.tan(slope), -D * 0.3),
                ),
            )
        return a
    # cordless: dock + upright handset
    W = a.uniform(rng, "width", 0.3, 0.4)
    Hh = 1.0
    T = a.uniform(rng, "thickness", 0.12, 0.2)
    # a compact cradle (a wide, deep dock under an upright handset reads as a chair)
    dock_w = W * a.uniform(rng, "dock_width", 1.15, 1.6)
    dock_h = a.uniform(rng, "dock_height", 0.1, 0.2)
    dock_d = a.uniform(rng, "dock_depth", 0.25, 0.4)
    a.add("dock", P.rounded_box((dock_w, dock_h, dock_d), 0.04, (0, dock_h / 2, 0), 8))
    tilt = np.deg2rad(a.uniform(rng, "lean_deg", 5, 20))
    rot = P.rotation_matrix((1, 0, 0), -tilt)
    a.add(
        "handset",
        P.transform(P.rounded_box((W, Hh, T), 0.06, (0, Hh / 2, 0), 8), rot, (0, dock_h * 0.5, 0)),
    )
    keys = []
    for i in range(4):
        for j in range(3):
            keys.append(
                P.box((W * 0.2, 0.05, 0.03), ((j - 1) * W * 0.28, 0.25 + i * 0.09, T / 2 + 0.004))
            )
    a.add("button", *[P.transform(k, rot, (0, dock_h * 0.5, 0)) for k in keys])
    a.add(
        "screen",
        P.transform(P.box((W * 0.75, 0.2, 0.02), (0, 0.75, T / 2)), rot, (0, dock_h * 0.5, 0)),
    )
    return a


# ----------------------------------------------------------------------------- rifle


def rifle(rng: np.random.Generator) -> Assembly:
    """Rifles (muzzle +z, grip down): fixed, thumbhole, skeleton or straight stock; box,
    curved or drum magazine or none; with or without scope, bipod and muzzle device."""
    a = Assembly("rifle")
    L = 1.0
    tmin = MIN_FRACTION * L
    stock = a.choose(rng, ["fixed-stock", "thumbhole-stock", "skeleton-stock", "hunting-stock"])
    mag = a.choose(rng, ["box-mag", "curved-mag", "drum-mag", "no-mag"], p=[0.35, 0.25, 0.1, 0.3])
    scope = a.flag(rng, "scope", 0.5)
    bipod = a.flag(rng, "bipod", 0.25)
    rl = a.uniform(rng, "receiver_length", 0.2, 0.32)
    rh = a.uniform(rng, "receiver_height", 0.06, 0.1)
    rw = _thick(a.uniform(rng, "receiver_width", 0.03, 0.05), L)
    sl = a.uniform(rng, "stock_length", 0.22, 0.32)
    bl = L - sl - rl
    yb = 0.0  # barrel axis height (the gun's up is +y)
    z_r0 = -L / 2 + sl  # receiver back
    z_r1 = z_r0 + rl  # receiver front
    br = _thick(a.uniform(rng, "barrel_diameter", 0.018, 0.03), L) / 2
    a.add("receiver", P.box((rw, rh, rl), (0, yb - rh * 0.25, (z_r0 + z_r1) / 2)))
    a.add("barrel", P.cylinder((0, yb, z_r1 - 0.02), (0, yb, L / 2), br, br, 16))
    fl = a.uniform(rng, "handguard_length", 0.4, 0.75) * bl
    hg = a.choose(rng, ["round-handguard", "box-handguard"])
    if hg == "round-handguard":
        a.add(
            "handguard",
            P.cylinder(
                (0, yb - 0.005, z_r1 - 0.01), (0, yb - 0.005, z_r1 + fl), rh * 0.45, rh * 0.4, 16
            ),
        )
    else:
        a.add(
            "handguard", P.box((rw * 0.95, rh * 0.8, fl), (0, yb - rh * 0.2, z_r1 + fl / 2 - 0.01))
        )
    if a.flag(rng, "muzzle-device", 0.5):
        ml = a.uniform(rng, "muzzle_length", 0.03, 0.12)
        a.add("muzzle", P.cylinder((0, yb, L / 2 - ml), (0, yb, L / 2), br * 1.8, br * 1.8, 16))

    # stock: side profile (z, y) extruded across x
    drop = a.uniform(rng, "stock_drop", 0.0, 0.06)
    sh = a.uniform(rng, "butt_height", 0.1, 0.16)
    z0 = -L / 2
    top = yb + rh * 0.2
    if stock in ("fixed-stock", "thumbhole-stock", "hunting-stock"):
        wrist = rh * (0.6 if stock == "hunting-stock" else 0.8)
        prof = np.array(
            [
                (z0, top - drop),
                (z0, top - drop - sh),
                (z_r0 + 0.02, top - wrist - rh * 0.3),
                (z_r0 + 0.02, top),
            ]
        )
        a.add("stock", P.extrude_profile(prof, rw * 0.9, axis="x"))
        if stock == "thumbhole-stock":
            # a closed loop below the wrist forms the thumbhole grip
            a.add(
                "stock",
                P.beam(
                    (0, top - drop - sh * 0.9, z0 + sl * 0.45),
                    (0, yb - rh * 1.6, z_r0 + 0.03),
                    tmin * 1.2,
                    rw * 0.9,
                ),
            )
        if stock == "hunting-stock":
            # the wooden stock runs forward under the barrel
            a.add(
                "stock",
                P.box(
                    (rw * 0.9, rh * 0.6, rl + fl * 0.9),
                    (0, yb - rh * 0.55, z_r0 + (rl + fl * 0.9) / 2),
                ),
            )
    else:  # skeleton: a tube frame
        pts = np.array(
            [
                (0, top, z_r0 + 0.01),
                (0, top - drop, z0 + 0.02),
                (0, top - drop - sh, z0 + 0.02),
                (0, yb - rh * 0.6, z_r0 + 0.01),
            ]
        )
        a.add("stock", P.tube(pts, tmin * 0.6, 8))
        a.add("stock", P.box((rw * 0.9, sh + 0.02, tmin), (0, top - drop - sh / 2, z0 + tmin / 2)))
    if stock != "hunting-stock":
        gl = a.uniform(rng, "grip_length", 0.09, 0.13)
        g0 = np.array([0, yb - rh * 0.6, z_r0 + 0.04])
        g1 = g0 + gl * np.array([0, -np.cos(0.3), -np.sin(0.3)])
        a.add("grip", P.beam(g0, g1, _thick(0.035, L), rw * 0.85))

    # magazine in front of the grip
    zm = z_r0 + rl * a.uniform(rng, "mag_position", 0.55, 0.75)
    ml = a.uniform(rng, "mag_length", 0.08, 0.2)
    mw = a.uniform(rng, "mag_depth", 0.03, 0.05)
    ybot = yb - rh * 0.7
    if mag == "box-mag":
        a.add(
            "magazine", P.beam((0, ybot + 0.01, zm), (0, ybot - ml, zm - ml * 0.15), mw, rw * 0.8)
        )
    elif mag == "curved-mag":
        pts = [
            (0, ybot + 0.01, zm),
            (0, ybot - ml * 0.5, zm + ml * 0.12),
            (0, ybot - ml, zm + ml * 0.4),
        ]
        for p, q in zip(pts[:-1], pts[1:], strict=True):
            a.add("magazine", P.beam(p, q, mw, rw * 0.8))
    elif mag == "drum-mag":
        dr = a.uniform(rng, "drum_radius", 0.05, 0.08)
        a.add(
            "magazine",
            P.cylinder(
                (-rw * 0.6, ybot - dr * 0.7, zm), (rw * 0.6, ybot - dr * 0.7, zm), dr, dr, 20
            ),
        )
    if scope:
        sr = _thick(a.uniform(rng, "scope_diameter", 0.025, 0.04), L) / 2
        sl2 = a.uniform(rng, "scope_length", 0.2, 0.32)
        ys = yb + rh * 0.2 + sr + a.uniform(rng, "scope_height", 0.015, 0.04)
        zc = (z_r0 + z_r1) / 2 + 0.02
        a.add("scope", P.cylinder((0, ys, zc - sl2 / 2), (0, ys, zc + sl2 / 2), sr, sr, 16))
        a.add(
            "scope",
            P.cylinder(
                (0, ys, zc + sl2 / 2 - 0.05), (0, ys, zc + sl2 / 2), sr * 1.35, sr * 1.5, 16
            ),
        )
        a.add(
            "scope",
            P.cylinder(
                (0, ys, zc - sl2 / 2), (0, ys, zc - sl2 / 2 + 0.04), sr * 1.25, sr * 1.15, 16
            ),
        )
        for dz in (-sl2 * 0.25, sl2 * 0.25):
            a.add("mount", P.box((rw * 0.7, ys - yb, tmin), (0, (ys + yb) / 2, zc + dz)))
    elif a.flag(rng, "carry-handle", 0.4):
        a.add(
            "sight", P.box((rw * 0.6, rh * 0.6, rl * 0.7), (0, yb + rh * 0.45, (z_r0 + z_r1) / 2))
        )
    if bipod:
        zb = z_r1 + fl * 0.9
        bl2 = a.uniform(rng, "bipod_length", 0.12, 0.2)
        for sx in (-1, 1):
            a.add(
                "bipod",
                P.cylinder(
                    (0, yb - 0.02, zb),
                    (sx * bl2 * 0.35, yb - bl2, zb + bl2 * 0.3),
                    tmin * 0.45,
                    tmin * 0.45,
                    8,
                ),
            )
    return a
