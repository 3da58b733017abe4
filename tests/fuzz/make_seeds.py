#!/usr/bin/env python3
"""Turns the spec's hex vectors into binary seed files, one directory per fuzz target.

Every target gets every vector (a TEEP decoder must survive a SUIT envelope too), plus, for
the TEEP and EAT targets, the COSE payloads are also useful seeds: libFuzzer mutates from
whole messages, and the harnesses peel COSE wrappers themselves.
"""
import os
import sys

vectors, out, targets = sys.argv[1], sys.argv[2], sys.argv[3:]
for t in targets:
    os.makedirs(os.path.join(out, t), exist_ok=True)
for name in sorted(os.listdir(vectors)):
    if not name.endswith('.hex') or '.raw.' in name:
        continue
    with open(os.path.join(vectors, name)) as f:
        data = bytes.fromhex(''.join(f.read().split()))
    for t in targets:
        with open(os.path.join(out, t, name[:-4] + '.bin'), 'wb') as f:
            f.write(data)
