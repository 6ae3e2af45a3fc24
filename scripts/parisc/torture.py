#!/usr/bin/env python3
"""Builds the GCC C torture execute tests for hppa (freestanding-linked, hosted-compiled, with the
small runtime in scripts/parisc/user and a soft-float library) and runs each under qemu-hppa-static.

Usage: torture.py TORTURE_DIR SOFTFP_LIB OUT_DIR [--tests names.txt] [--jobs N]
Writes OUT_DIR/qemu.json: [{test, stage: compile|link|linked, err, elf, qemu}], where qemu is the
exit status or "timeout"."""
import argparse, json, os, re, subprocess, sys
from multiprocessing import Pool

HERE = os.path.dirname(os.path.abspath(__file__))
USER = os.path.join(HERE, 'user')
CC = 'hppa-linux-gnu-gcc'
CFLAGS = ['-O2', '-fno-pic', '-fno-pie', '-mdisable-fpregs', '-w']
RUNTIME_FLAGS = ['-ffreestanding', '-fno-builtin', '-fno-tree-loop-distribute-patterns']


def dg_options(source):
    """dg-options / dg-additional-options in both the "..." and the { ... } forms, skipping the
    ones restricted to other targets."""
    text = open(source, errors='replace').read()
    options = []
    pattern = r'\{\s*dg-(?:additional-)?options\s+(?:"([^"]*)"|\{([^}]*)\})\s*(\{[^}]*\})?\s*\}'
    for m in re.finditer(pattern, text):
        selector = m.group(3) or ''
        if 'target' in selector and 'hppa' not in selector and '*-*-*' not in selector:
            continue
        options += (m.group(1) if m.group(1) is not None else m.group(2).replace('"', '')).split()
    return options


def build_run(job):
    source, out, runtime, softfp, run = job
    name = os.path.basename(source)[:-2]
    obj = os.path.join(out, name + '.o')
    elf = os.path.join(out, name + '.elf')
    result = {'test': name}
    options = dg_options(source)
    if not os.path.exists(obj):
        p = subprocess.run([CC] + CFLAGS + options + ['-c', source, '-o', obj],
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            result['stage'] = 'compile'
            result['err'] = (p.stderr.strip().splitlines() or ['?'])[-1][:200]
            return result
    if not os.path.exists(elf):
        p = subprocess.run([CC] + CFLAGS + ['-nostdlib', '-static', '-Wl,--build-id=none', '-T',
                            os.path.join(USER, 'link.ld'), '-o', elf] + runtime + [obj, softfp, '-lgcc'],
                           capture_output=True, text=True, timeout=300)
        if p.returncode != 0:
            undefined = sorted(set(re.findall(r"undefined reference to `([^']+)'", p.stderr)))
            result['stage'] = 'link'
            result['err'] = ('undefined: ' + ' '.join(undefined)) if undefined else p.stderr.strip()[-200:]
            return result
    result['stage'] = 'linked'
    result['elf'] = elf
    if run:
        try:
            q = subprocess.run(['qemu-hppa-static', elf], capture_output=True, timeout=20)
            result['qemu'] = q.returncode
        except subprocess.TimeoutExpired:
            result['qemu'] = 'timeout'
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('torture')
    parser.add_argument('softfp')
    parser.add_argument('out')
    parser.add_argument('--tests')
    parser.add_argument('--jobs', type=int, default=2)
    parser.add_argument('--no-run', action='store_true')
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    runtime = []
    for f in ['crt0.S', 'trt_min.c', 'trt_ext.c', 'trt_fptr.c', 'lib64.c']:
        obj = os.path.join(args.out, '_rt_' + f.replace('.', '_') + '.o')
        extra = RUNTIME_FLAGS if f.endswith('.c') else []
        subprocess.run([CC] + CFLAGS + extra + ['-c', os.path.join(USER, f), '-o', obj], check=True)
        runtime.append(obj)
    if args.tests:
        names = [l.strip() for l in open(args.tests) if l.strip()]
        sources = [os.path.join(args.torture, n + '.c') for n in names]
    else:
        sources = sorted(os.path.join(args.torture, f) for f in os.listdir(args.torture) if f.endswith('.c'))
    jobs = [(s, args.out, runtime, args.softfp, not args.no_run) for s in sources]
    if args.jobs > 1:
        with Pool(args.jobs) as pool:
            results = pool.map(build_run, jobs, chunksize=4)
    else:
        results = [build_run(job) for job in jobs]
    json.dump(results, open(os.path.join(args.out, 'qemu.json'), 'w'), indent=0)
    stages = {}
    for r in results:
        stages[r['stage']] = stages.get(r['stage'], 0) + 1
    passed = sum(1 for r in results if r.get('qemu') == 0)
    print(f"torture: {len(results)} tests, compile failures {stages.get('compile', 0)}, "
          f"link failures {stages.get('link', 0)}, linked {stages.get('linked', 0)}, "
          f"pass under qemu-hppa {passed}")


if __name__ == '__main__':
    main()
