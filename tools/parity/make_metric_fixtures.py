#!/usr/bin/env python3
"""Parity fixtures for the Swift `Correspondence` metrics (PCK, KAP, matching) and the `SPair` reader.

    pip install -r tools/parity/requirements-metrics.txt
    python3 tools/parity/make_metric_fixtures.py [--out Tests/Fixtures/metrics] [--synth DIR] [--check-torch]

Writes into --out:
  g6.safetensors, g10.safetensors, g60.safetensors   inputs per case (R = 84, 140, 840)
  matching.safetensors                               descriptors + reference cosine similarities
  expected.json                                      everything the Swift tests compare against
  synth_expected.json                                reader facts of the synthetic SPair dataset

The evaluation loop of VICO-UoE/SphericalMaps `pck_spair_pascal_sphere.py` (METHOD §2.3, §5, §6) is
re-stated here in numpy with the dtypes PyTorch uses at every step (float32 keypoints and
similarities, float64 thresholds for PCK, float32 thresholds for KAP, float32 alpha), and AP comes
from scikit-learn's real `average_precision_score`. `--check-torch` additionally runs the same
steps with torch tensors (CPU) where torch is installed and asserts identical results.
Output is deterministic (fixed seeds, sorted keys).
"""
import argparse
import glob
import json
import os
import struct
import sys

import numpy as np
from sklearn.metrics import average_precision_score

ALPHAS = np.array([0.1, 0.05, 0.01], dtype=np.float32)  # torch.tensor([0.1, 0.05, 0.01])
PATCH = 14
F32 = np.float32


# ----------------------------------------------------------------------------------------------
# Reference formulation (numpy transcription of the evaluation loop)
# ----------------------------------------------------------------------------------------------

def kps_matrix(kps_dict, num_kps):
    """load_spair_data: zeros [num_kps, 3], row int(id) = (x, y, 1) for every non-null key."""
    k = np.zeros((num_kps, 3), dtype=F32)
    for key, v in kps_dict.items():
        if v is not None:
            k[int(key)] = (F32(v[0]), F32(v[1]), F32(1))
    return k


def preprocess_kps_pad(kps, w, h, size):
    """Letterbox transform; torch multiplies the float32 tensor by the Python float scale in float32."""
    kps = kps.copy()
    scale = size / max(w, h)
    kps[:, 0:2] = kps[:, 0:2] * F32(scale)
    if h < w:
        new_h = int(np.around(size * h / w))
        kps[:, 1] = kps[:, 1] + F32(int((size - new_h) / 2))
    elif w < h:
        new_w = int(np.around(size * w / h))
        kps[:, 0] = kps[:, 0] + F32(int((size - new_w) / 2))
    kps = kps * kps[:, 2:3]  # COUNT_INVIS = False
    return kps.astype(F32), scale


def pck_threshold(trg_bbox, trg_w, trg_h, size):
    """max(bbox sides) (numpy int64) * (size / max(W, H)) (Python float) -> float64."""
    b = np.asarray(trg_bbox, dtype=np.int64)
    return max(b[3] - b[1], b[2] - b[0]) * (size / max(trg_w, trg_h))


def patch_index(kps, size):
    g = size // PATCH
    f = F32(g / size)
    py = (f * kps[:, 1]).astype(np.int32)
    px = (f * kps[:, 0]).astype(np.int32)
    return (g * py + px).astype(np.int64)


def pck_pair(src, trg, sim, size):
    """Returns (pred [Nv,2] float32, gt [Nv,2] float32) for mutually visible rows."""
    g = size // PATCH
    vis = src[:, 2] * trg[:, 2] > 0
    nn = np.argmax(sim, axis=1)  # first index on ties, as torch.argmax
    nn_y, nn_x = nn // g, nn % g
    # (p - 1)*stride + stride + patch//2 - .5 : int64 arithmetic, then float32
    px = ((nn_x - 1) * PATCH + PATCH + PATCH // 2).astype(F32) - F32(0.5)
    py = ((nn_y - 1) * PATCH + PATCH + PATCH // 2).astype(F32) - F32(0.5)
    pred = np.stack([px, py], axis=1).astype(F32)
    return pred[vis], trg[vis][:, 0:2], nn


def round_f32(q):
    """Correctly rounded (half to even) float32 of an exact Fraction."""
    from fractions import Fraction
    if q == 0:
        return F32(0)
    sign = -1 if q < 0 else 1
    q = abs(q)
    e = q.numerator.bit_length() - q.denominator.bit_length()
    if q < Fraction(2) ** e:
        e -= 1
    shift = max(e - 23, -149)
    m = q / (Fraction(2) ** shift)
    whole, rest = divmod(m.numerator, m.denominator)
    if 2 * rest > m.denominator or (2 * rest == m.denominator and whole % 2 == 1):
        whole += 1
    return F32(sign * float(whole * Fraction(2) ** shift))


def fma32(a, b, c):
    """float32 fma(a, b, c) elementwise: the exact a*b + c rounded once."""
    from fractions import Fraction
    return np.array([round_f32(Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z)))
                     for x, y, z in zip(a, b, c)], dtype=F32)


def pck_category(preds, gts, thresholds, counts):
    """preds/gts: lists per pair; thresholds float64 per pair; counts = visible rows per pair."""
    pred = np.concatenate(preds, axis=0).astype(F32)
    gt = np.concatenate(gts, axis=0).astype(F32)
    # The reference stacks (y, x) and calls `.norm(dim=-1)` on CPU tensors. PyTorch's CPU kernel
    # (AVX2 build, any x86-64 since 2013) accumulates in float32 with a fused multiply-add:
    # acc = y*y, then acc = fma(x, x, acc), then sqrt in float32.
    d = (pred - gt).astype(F32)
    sq = fma32(d[:, 0], d[:, 0], (d[:, 1] * d[:, 1]).astype(F32))
    err = np.sqrt(sq).astype(F32)
    bbox = np.concatenate([np.full(c, t, dtype=np.float64) for t, c in zip(thresholds, counts)])
    thr = ALPHAS.astype(np.float64)[:, None] * bbox[None, :]  # float32 alpha promoted to float64
    correct = err.astype(np.float64)[None, :] < thr
    n = len(gt)
    with np.errstate(invalid='ignore', divide='ignore'):
        score = (correct.sum(axis=1).astype(F32) / F32(n)).astype(F32)  # int64 / int -> float32
    return score, correct.sum(axis=1), n, err


def kap_pair(src, trg, sim, thr_p, size):
    """Emitted (scores [3, m] float32, labels [3, m] float32) of one pair."""
    g = size // PATCH
    vis = src[:, 2] > 0
    gt = trg[vis][:, 0:2].astype(F32)
    thresh = (F32(thr_p) * ALPHAS).astype(F32)  # 0-d float64 tensor * float32 tensor -> float32
    t2 = (thresh * thresh).astype(F32)
    line = np.arange(size)
    map_x = np.tile(line[None, :], (size, 1)).reshape(-1)
    map_y = np.tile(line[:, None], (1, size)).reshape(-1)
    coord = np.stack([map_x, map_y], axis=-1)  # int64 [R*R, 2]
    diff = (coord[None, :, :].astype(F32) - gt[:, None, :]).astype(F32)  # int64 - float32 -> float32
    sq = (diff * diff).astype(F32)
    dist_full = (sq[..., 0] + sq[..., 1]).astype(F32).reshape(-1, size, size)
    # F.interpolate(mode='nearest') R -> G: source index floor(dst * R/G) = 14 * dst
    rows = (np.arange(g) * (size // g))
    dist = dist_full[:, rows][:, :, rows].reshape(-1, g * g)
    label = dist[None, :, :] < t2[:, None, None]
    min_ind = np.argmin(dist, axis=-1)  # first index on ties
    for k in range(len(min_ind)):
        label[:, k, min_ind[k]] = True
    label = label & (trg[vis, 2] > 0)[None, :, None]
    s = sim[vis].astype(F32)
    s = np.broadcast_to(s, (3,) + s.shape)
    lo, hi = s.min(), s.max()
    s = ((s - lo).astype(F32) / F32(hi - lo)).astype(F32)
    preds, labels = [[], [], []], [[], [], []]
    for th in range(3):
        for k in range(int(vis.sum())):
            sm, lm = s[th, k], label[th, k]
            if lm.any():
                preds[th] += [sm[lm].max(), sm[~lm].max()]
                labels[th] += [1.0, 0.0]
            else:
                preds[th] += [sm.max()]
                labels[th] += [0.0]
    return np.array(preds, dtype=F32), np.array(labels, dtype=F32)


def kap_category(pair_outputs):
    scores = []
    for th in range(3):
        p = np.concatenate([o[0][th] for o in pair_outputs]).astype(F32)
        l = np.concatenate([o[1][th] for o in pair_outputs]).astype(F32)
        scores.append(float(average_precision_score(l, p, average='weighted')))
    return scores


# ----------------------------------------------------------------------------------------------
# Optional cross-check of the numpy transcription against torch tensors
# ----------------------------------------------------------------------------------------------

def torch_check_case(pairs, size):
    import torch
    import torch.nn.functional as F
    g = size // PATCH
    alpha = torch.tensor([0.1, 0.05, 0.01])
    gts, preds, bbs, kap = [], [], [], []
    thresholds = torch.tensor([np.float64(p['thr']) for p in pairs])
    assert thresholds.dtype == torch.float64
    for i, p in enumerate(pairs):
        src, trg = torch.from_numpy(p['src']), torch.from_numpy(p['trg'])
        sim = torch.from_numpy(p['sim'])
        vis = src[:, 2] * trg[:, 2] > 0
        nn = torch.argmax(sim, dim=1)
        ny, nx = nn // g, nn % g
        kx = (nx - 1) * PATCH + PATCH + PATCH // 2 - .5
        ky = (ny - 1) * PATCH + PATCH + PATCH // 2 - .5
        k12 = torch.stack([kx, ky]).permute(1, 0)
        gts.append(trg[vis][:, [1, 0]])
        preds.append(k12[vis][:, [1, 0]])
        bbs.append(thresholds[i].repeat(vis.sum()))
        # KAP
        vis = src[:, 2] > 0
        gt = trg[vis][:, :2]
        thresh = thresholds[i] * alpha.view(3, 1, 1)
        line = torch.arange(size)
        cm = torch.stack([line.view(1, -1).repeat(size, 1).view(-1), line.view(-1, 1).repeat(1, size).view(-1)], dim=-1)
        dm = (cm.unsqueeze(0) - gt.unsqueeze(1)).pow(2).sum(dim=-1).view(1, -1, size, size)
        dm = F.interpolate(dm, (g, g)).view(1, -1, g * g)
        lm = dm < thresh.pow(2)
        _, mi = dm.min(dim=-1)
        lm = lm.scatter(-1, mi.repeat(3, 1).unsqueeze(-1), True)
        lm = lm * (trg[vis, 2] > 0).unsqueeze(0).unsqueeze(-1)
        sm = sim[vis].unsqueeze(0).repeat(3, 1, 1)
        sm = (sm - sm.min()) / (sm.max() - sm.min())
        pr, lb = [], []
        for th in range(3):
            for k in range(int(vis.sum())):
                s_, l_ = sm[th, k], lm[th, k]
                if l_.any():
                    pr += [s_.masked_select(l_).max(), s_.masked_select(~l_).max()]
                    lb += [torch.ones(()), torch.zeros(())]
                else:
                    pr += [s_.max()]
                    lb += [torch.zeros(())]
        kap.append((torch.stack(pr).view(3, -1).numpy(), torch.stack(lb).view(3, -1).numpy()))
    gt = torch.cat(gts, 0)
    pr = torch.cat(preds, 0)
    err = (pr - gt).norm(dim=-1)
    thr = alpha.unsqueeze(-1) * torch.cat(bbs, 0).unsqueeze(0)
    assert thr.dtype == torch.float64
    pck = ((err.unsqueeze(0).repeat(3, 1) < thr).sum(dim=-1) / len(gt)).numpy()
    return pck, err.numpy(), kap


# ----------------------------------------------------------------------------------------------
# Fixture cases
# ----------------------------------------------------------------------------------------------

def write_safetensors(path, tensors, metadata=None):
    codes = {np.dtype(np.float32): 'F32', np.dtype(np.int32): 'I32', np.dtype(np.uint8): 'U8', np.dtype(np.float64): 'F64'}
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        b = a.astype(a.dtype.newbyteorder('<')).tobytes()
        header[name] = {'dtype': codes[a.dtype], 'shape': list(a.shape), 'data_offsets': [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    if metadata:
        header['__metadata__'] = {k: str(v) for k, v in sorted(metadata.items())}
    h = json.dumps(header, sort_keys=True, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def make_pair(rng, size, num_kps, src_wh, trg_wh, special):
    """Raw keypoints (pixel coords of the original images) with designed visibility and borders."""
    g = size // PATCH

    def raw(w, h):
        k = np.zeros((num_kps, 3), dtype=F32)
        k[:, 0] = rng.integers(0, w, num_kps)
        k[:, 1] = rng.integers(0, h, num_kps)
        k[:, 2] = 1
        return k

    src, trg = raw(*src_wh), raw(*trg_wh)
    # visibility pattern: row 1 source-only, row 2 target-only, row 3 neither, others random (mostly visible)
    src[2, 2] = 0
    trg[1, 2] = 0
    src[3, 2] = trg[3, 2] = 0
    for k in range(4, num_kps):
        if rng.random() < 0.2:
            (src if rng.random() < 0.5 else trg)[k, 2] = 0
    for m in (src, trg):
        m[m[:, 2] == 0, 0:2] = 0  # null in the JSON: scatter leaves zeros
    if special:
        # images with max(W, H) == R have scale 1 and an integer offset: put keypoints exactly on
        # patch borders (x = 14k), and targets midway between two patch corners (distance ties).
        for m, (w, h) in ((src, src_wh), (trg, trg_wh)):
            if max(w, h) != size:
                continue
            off_x = (size - int(np.around(size * w / h))) // 2 if w < h else 0
            off_y = (size - int(np.around(size * h / w))) // 2 if h < w else 0
            for k, (cx, cy) in zip((0, 4, 5), ((1, 1), (g - 1, 0), (0, g - 1))):
                x, y = PATCH * cx - off_x, PATCH * cy - off_y
                if 0 <= x < w and 0 <= y < h and m[k, 2] > 0:
                    m[k, 0:2] = (x, y)
            x, y = PATCH * 2 + 7 - off_x, PATCH * 1 - off_y  # equidistant from two top-left corners
            if 0 <= x < w and 0 <= y < h and m[6, 2] > 0:
                m[6, 0:2] = (x, y)
    return src, trg


def make_sim(rng, trg, g, quantise):
    """Similarity rows with a peak near the true target patch (so PCK and KAP are informative),
    background noise, optional quantisation (exact ties) and some rows with two equal maxima."""
    num_kps = trg.shape[0]
    sim = rng.uniform(-0.3, 0.6, size=(num_kps, g * g)).astype(F32)
    for k in range(num_kps):
        c = min(max(int(trg[k, 0] // PATCH), 0), g - 1)
        r = min(max(int(trg[k, 1] // PATCH), 0), g - 1)
        dc, dr = rng.choice([-1, 0, 0, 0, 1], 2)
        c, r = min(max(c + dc, 0), g - 1), min(max(r + dr, 0), g - 1)
        for rr in range(max(r - 1, 0), min(r + 2, g)):
            for cc in range(max(c - 1, 0), min(c + 2, g)):
                sim[k, rr * g + cc] = max(sim[k, rr * g + cc], F32(0.75 + 0.1 * rng.random()))
        sim[k, r * g + c] = F32(0.9 + 0.05 * rng.random())
    if quantise:
        sim = (np.round(sim * 16) / 16).astype(F32)  # many exact ties (argmax, normalised scores, AP groups)
    # rows with two exactly equal maxima: argmax must take the first
    for k in range(0, num_kps, 3):
        j1, j2 = sorted(rng.choice(g * g, 2, replace=False))
        top = F32(sim[k].max())
        sim[k, j1] = sim[k, j2] = top
    return sim


CASES = [
    # name, R, categories {name: (pairs, num_kps)}, image sizes, quantise
    ('g6', 84, {'car': (4, 8), 'dog': (3, 8)}, [(84, 56), (56, 84), (84, 84), (120, 80), (80, 120), (100, 100), (500, 375), (333, 500)], True),
    ('g10', 140, {'bird': (3, 10), 'cat': (3, 10)}, [(140, 100), (70, 140), (140, 140), (375, 500), (500, 333), (64, 48)], False),
    ('g60', 840, {'chair': (2, 12)}, [(840, 560), (500, 375), (375, 500), (640, 640)], True),
]


def build_case(name, size, cats, sizes, quantise, rng, out, check_torch):
    g = size // PATCH
    tensors, cat_results = {}, []
    for cat, (npairs, num_kps) in cats.items():
        pairs = []
        for i in range(npairs):
            src_wh = sizes[(2 * i) % len(sizes)]
            trg_wh = sizes[(2 * i + 1 + len(cat)) % len(sizes)]
            src_raw, trg_raw = make_pair(rng, size, num_kps, src_wh, trg_wh, special=(i < 2))
            src, _ = preprocess_kps_pad(src_raw, src_wh[0], src_wh[1], size)
            trg, _ = preprocess_kps_pad(trg_raw, trg_wh[0], trg_wh[1], size)
            tw, th = trg_wh
            x1, y1 = int(rng.integers(0, tw // 3)), int(rng.integers(0, th // 3))
            bbox = [x1, y1, int(rng.integers(x1 + tw // 4, tw)), int(rng.integers(y1 + th // 4, th))]
            thr = pck_threshold(bbox, tw, th, size)
            sim = make_sim(rng, trg, g, quantise)
            key = '%s.pair%d' % (cat, i)
            pairs.append(dict(key=key, src=src, trg=trg, sim=sim, thr=thr, bbox=bbox, src_wh=src_wh, trg_wh=trg_wh,
                              src_raw=src_raw, trg_raw=trg_raw))
        # PCK
        preds, gts, counts, argmaxes = [], [], [], []
        for p in pairs:
            pr, gt, nn = pck_pair(p['src'], p['trg'], p['sim'], size)
            preds.append(pr)
            gts.append(gt)
            counts.append(len(gt))
            argmaxes.append(nn)
        pck, ncorrect, nvis, err = pck_category(preds, gts, [p['thr'] for p in pairs], counts)
        # KAP
        outs = [kap_pair(p['src'], p['trg'], p['sim'], p['thr'], size) for p in pairs]
        kap = kap_category(outs)
        if check_torch:
            tp, terr, tkap = torch_check_case(pairs, size)
            assert np.array_equal(tp, pck), (name, cat, tp, pck)
            assert np.array_equal(terr, err), (name, cat)
            for (a, b), (c, d) in zip(tkap, outs):
                assert np.array_equal(a, c) and np.array_equal(b, d), (name, cat)
        pair_json = []
        for p, nn, o in zip(pairs, argmaxes, outs):
            k = p['key']
            tensors[k + '.src_kps'] = p['src']
            tensors[k + '.trg_kps'] = p['trg']
            tensors[k + '.src_raw'] = p['src_raw']
            tensors[k + '.trg_raw'] = p['trg_raw']
            tensors[k + '.sim'] = p['sim']
            tensors[k + '.argmax'] = nn.astype(np.int32)
            tensors[k + '.src_patch'] = patch_index(p['src'], size).astype(np.int32)
            for a in range(3):
                tensors['%s.kap%d.scores' % (k, a)] = o[0][a]
                tensors['%s.kap%d.labels' % (k, a)] = o[1][a].astype(np.uint8)
            pair_json.append(dict(key=k, threshold=float(p['thr']), trg_bbox=p['bbox'],
                                  src_size=list(p['src_wh']), trg_size=list(p['trg_wh']), num_kps=int(p['src'].shape[0])))
        cat_results.append(dict(name=cat, pairs=pair_json, pck=[float(v) for v in pck],
                                pck_correct=[int(v) for v in ncorrect], pck_evaluated=int(nvis), kap=kap,
                                kap_keypoints=int(sum(int((p['src'][:, 2] > 0).sum()) for p in pairs))))
    pck_vals = [np.array(c['pck'], dtype=F32) for c in cat_results]
    kap_vals = [np.array(c['kap'], dtype=F32) for c in cat_results]  # the reference stores AP in a float32 tensor
    weights = [len(c['pairs']) for c in cat_results]
    agg = dict(
        pck_macro=[float(np.average([v[a] for v in pck_vals])) for a in range(3)],
        pck_weighted=[float(np.average([v[a] for v in pck_vals], weights=weights)) for a in range(3)],
        kap_macro=[float(np.average([v[a] for v in kap_vals])) for a in range(3)],
        kap_weighted=[float(np.average([v[a] for v in kap_vals], weights=weights)) for a in range(3)],
    )
    fname = name + '.safetensors'
    write_safetensors(os.path.join(out, fname), tensors, {'resolution': size, 'generator': 'make_metric_fixtures.py'})
    return dict(name=name, file=fname, resolution=size, grid=g, alphas=[float(a) for a in ALPHAS],
                categories=cat_results, aggregate=agg)


def build_matching(rng, out, check_torch):
    """Cosine similarities with torch 2.x semantics: x / max(|x|, eps) per vector, then the dot product."""
    n1, n2, d = 36, 36, 24
    f1 = rng.normal(size=(n1, d)).astype(F32)
    f2 = rng.normal(size=(n2, d)).astype(F32)
    f1[5] = 0                                  # zero vector: cosine 0
    f1[7] = (f1[7] / np.linalg.norm(f1[7]) * F32(3e-9)).astype(F32)  # norm below eps: scaled by 1/eps
    f2[11] = (f2[11] * F32(1e-3)).astype(F32)
    s1 = rng.normal(size=(n1, 3)).astype(F32)
    s2 = rng.normal(size=(n2, 3)).astype(F32)
    s1 /= np.linalg.norm(s1, axis=1, keepdims=True)
    s2 /= np.linalg.norm(s2, axis=1, keepdims=True)
    s1, s2 = s1.astype(F32), s2.astype(F32)
    rows = np.array([0, 3, 5, 7, 7, 20, 35], dtype=np.int64)

    def cos(a, b):
        na = np.maximum(np.sqrt((a.astype(np.float64) ** 2).sum(1)).astype(F32), F32(1e-8))
        nb = np.maximum(np.sqrt((b.astype(np.float64) ** 2).sum(1)).astype(F32), F32(1e-8))
        an, bn = (a / na[:, None]).astype(F32), (b / nb[:, None]).astype(F32)
        return (an.astype(np.float64) @ bn.astype(np.float64).T).astype(F32)

    sim_d = cos(f1[rows], f2)
    sim_s = cos(s1[rows], s2)
    mixing = 0.8
    blended = (F32(mixing) * sim_d + F32(1 - mixing) * sim_s).astype(F32)
    if check_torch:
        import torch
        cs = torch.nn.CosineSimilarity(dim=3)
        t1, t2 = torch.from_numpy(f1)[None, None], torch.from_numpy(f2)[None, None]
        td = torch.stack([cs(t2, t1[:, :, r].unsqueeze(2)) for r in rows.tolist()], 2).squeeze().numpy()
        assert np.abs(td - sim_d).max() < 1e-6, np.abs(td - sim_d).max()
    write_safetensors(os.path.join(out, 'matching.safetensors'), {
        'f1': f1, 'f2': f2, 's1': s1, 's2': s2, 'rows': rows.astype(np.int32),
        'sim_features': sim_d, 'sim_sphere': sim_s, 'sim_blended': blended,
        'argmax_blended': np.argmax(blended, axis=1).astype(np.int32)})
    return dict(file='matching.safetensors', alpha=0.2, tokens=n1, dimension=d, rows=rows.tolist())


# ----------------------------------------------------------------------------------------------
# Synthetic SPair dataset: reader facts with the reference formulas
# ----------------------------------------------------------------------------------------------

def synth_expected(root, size=840):
    from PIL import Image
    cats = sorted(os.listdir(os.path.join(root, 'ImageAnnotation')))
    res = dict(resolution=size, categories=cats, pair_counts={}, num_kps={}, num_kps_glob_first={}, pairs=[],
               layouts={}, training=None, masks=[])
    for split in ('trn', 'val', 'test'):
        res['pair_counts'][split] = {c: len(glob.glob(f'{root}/PairAnnotation/{split}/*:{c}.json')) for c in cats}
        for sz in ('large', 'small'):
            res['layouts'][f'{sz}/{split}'] = len(open(f'{root}/Layout/{sz}/{split}.txt').read().split('\n')[:-1])
    for c in cats:
        first_glob = list(glob.glob(f'{root}/ImageAnnotation/{c}/*.json'))[0]
        first_sorted = sorted(glob.glob(f'{root}/ImageAnnotation/{c}/*.json'))[0]
        res['num_kps_glob_first'][c] = dict(file=os.path.basename(first_glob), count=len(json.load(open(first_glob))['kps']))
        res['num_kps'][c] = len(json.load(open(first_sorted))['kps'])
        counts = {len(json.load(open(p))['kps']) for p in glob.glob(f'{root}/ImageAnnotation/{c}/*.json')}
        assert counts == {res['num_kps'][c]}, (c, counts)
        pairs = sorted(glob.glob(f'{root}/PairAnnotation/test/*:{c}.json'))
        for p in pairs[:2] + pairs[-1:]:
            data = json.load(open(p))
            entry = dict(split='test', name=os.path.basename(p)[:-5], category=c)
            for side in ('src', 'trg'):
                ann = json.load(open(os.path.join(root, 'ImageAnnotation', c, data[f'{side}_imname'].replace('.jpg', '.json'))))
                raw = kps_matrix(ann['kps'], res['num_kps'][c])
                w, h = data[f'{side}_imsize'][:2]
                lb, _ = preprocess_kps_pad(raw, w, h, size)
                entry[side + '_raw'] = raw.astype(np.float64).tolist()
                entry[side + '_letterboxed'] = lb.astype(np.float64).tolist()
                entry[side + '_patch'] = patch_index(lb, size).tolist()
            tw, th = data['trg_imsize'][:2]
            entry['threshold'] = float(pck_threshold(data['trg_bndbox'], tw, th, size))
            res['pairs'].append(entry)
    # training list (datasets/SPair.py, training_batch=True)
    names = sorted(os.listdir(os.path.join(root, 'PairAnnotation', 'trn')))
    seen, first = set(), []
    for n in names:
        src = n.split('/')[-1].split('-')[1]
        if src not in seen:
            seen.add(src)
            first.append(n[:-5])
    samples = []
    for n in first[:5]:
        d = json.load(open(os.path.join(root, 'PairAnnotation', 'trn', n + '.json')))
        a = json.load(open(os.path.join(root, 'ImageAnnotation', d['category'], d['src_imname'].replace('.jpg', '.json'))))
        samples.append(dict(name=n, category=d['category'], azimuth_id=a['azimuth_id']))
    res['training'] = dict(count=len(first), first=samples, last=first[-1])
    for c in cats:
        stem = sorted(os.listdir(os.path.join(root, 'Segmentation', c)))[0][:-4]
        m = np.asarray(Image.open(os.path.join(root, 'Segmentation', c, stem + '.png')).convert('L'))
        res['masks'].append(dict(category=c, stem=stem, width=int(m.shape[1]), height=int(m.shape[0]), object_pixels=int((m > 0).sum())))
    return res


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', default=os.path.join(repo, 'Tests', 'Fixtures', 'metrics'))
    ap.add_argument('--synth', default=os.path.join(repo, '..', 'shared', 'data', 'spair-synth-dev'))
    ap.add_argument('--check-torch', action='store_true', help='also run the steps with torch and assert equality')
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(20240617)
    cases = [build_case(*c, rng=rng, out=args.out, check_torch=args.check_torch) for c in CASES]
    matching = build_matching(rng, args.out, args.check_torch)
    with open(os.path.join(args.out, 'expected.json'), 'w') as f:
        json.dump(dict(cases=cases, matching=matching), f, indent=1, sort_keys=True)
        f.write('\n')
    if os.path.isdir(args.synth):
        with open(os.path.join(args.out, 'synth_expected.json'), 'w') as f:
            json.dump(synth_expected(args.synth), f, indent=1, sort_keys=True)
            f.write('\n')
    else:
        print('note: %s not found; synth_expected.json not regenerated' % args.synth, file=sys.stderr)
    for c in cases:
        for cat in c['categories']:
            print('%-4s %-6s PCK %s  KAP %s' % (c['name'], cat['name'], ['%.4f' % v for v in cat['pck']], ['%.4f' % v for v in cat['kap']]))


if __name__ == '__main__':
    main()
