"""Generation speed of `KoLLM.generate` beside `transformers` and the memory-bandwidth roofline, on this machine.

For each preset (random weights: speed does not depend on their values) and each weight format (fp32, bf16, int8
weights with bf16 activations, and torch.ao's dynamic int8 on fp32 for comparison) it measures, interleaved with
`transformers.LlamaForCausalLM.generate` on the same weights (`kollm.model.to_hf`, greedy, as many steps for both):

- prefill tokens/s (one prompt of 512 tokens) and decode tokens/s at batch 1 and batch 8,
- with `+compile`, kollm's `generate(compile=True)` (fixed-shape steps compiled by inductor, weights frozen in),
  beside both transformers' default `generate` and its compiled recipe (static cache, compiled forward, the same
  inductor options), so the comparison is compiled against compiled too,
- the roofline: a chain of batch-1 `F.linear` calls over the model's own matrices (bytes/s it reaches), and the
  copy bandwidth, so decode tokens/s ÷ (chain bandwidth ÷ bytes read per token) is the fraction of the roofline,
- decode tokens/s as the context grows, as a table and `bench/figures/decode_vs_context.png`,
- what the M4 Max's 410 GB/s means for the plan's 50 tokens/s;
all written to `bench/reports/generate_speed.md` (and .json).

The CPU may be shared: every figure is a median of `--repeats` interleaved runs, and ratios are taken within a run.
Run: `python bench/generate_speed.py [--presets small medium] [--quick] [--threads 1]`.
"""
import argparse, copy, dataclasses, os, statistics, sys, time, warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from kollm.model import KoLLM, KoLLMConfig, to_hf
from kollm.decode_fast import decode_bytes_per_token, quantize_int8
import kollm.generate  # adds KoLLM.generate
from common import markdown_table, seconds, write_report

FIGURES = Path(__file__).parent / 'figures'
M4_MAX_BANDWIDTH = 410e9  # bytes/s, Apple's figure for the M4 Max


def copy_bandwidth(mb: int = 256, repeats: int = 5) -> float:
    "Bytes/s of a large tensor copy (each byte read once and written once)."
    src = torch.empty(mb * 2**20 // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    return 2 * src.numel() * 4 / min(seconds(lambda: dst.copy_(src)) for _ in range(repeats))


def matrices(model) -> list:
    "The weight matrices a decoding step multiplies with (the LM head included)."
    return [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)]


def linear_chain_bandwidth(model, dtype, repeats: int = 5) -> float:
    "Bytes/s reached by batch-1 `F.linear` over the model's matrices (same shapes, in `dtype`): the decoding roofline."
    weights = [w.to(dtype) for w in matrices(model)]
    xs = {w.shape[1]: torch.randn(1, w.shape[1], dtype=dtype) for w in weights}
    step = lambda: [F.linear(xs[w.shape[1]], w) for w in weights]
    with torch.inference_mode():
        step()
        return sum(w.numel() * w.element_size() for w in weights) / min(seconds(step) for _ in range(repeats))


def hf_generate(hf, ids, new_tokens, **kwargs):
    hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                do_sample=False, pad_token_id=0, **kwargs)


def kollm_generate(model, ids, new_tokens):
    model.generate(ids, new_tokens, temperature=0)


def kollm_generate_compiled(model, ids, new_tokens):
    "`generate(compile=True)`: eager prefill, then one compiled fixed-shape step (`kollm.decode_fast.compile_decoding`)."
    model.generate(ids, new_tokens, temperature=0, compile=True)


def hf_compiled(hf):
    "transformers' own recipe for fast decoding, a static cache and a compiled forward, with kollm's CPU options."
    import torch._inductor.config as inductor_config
    forward = torch.compile(hf.forward, fullgraph=True, dynamic=False)
    def compiled_forward(*args, **kwargs):  # every model of the run shares LlamaForCausalLM.forward's graph cache
        with inductor_config.patch(freezing=True, cpp_wrapper=True), torch._dynamo.config.patch(recompile_limit=64):
            return forward(*args, **kwargs)
    hf.forward = compiled_forward
    return hf


def hf_generate_compiled(hf, ids, new_tokens):
    with torch.inference_mode():  # as in every timed run: a change of grad mode would recompile
        hf_generate(hf, ids, new_tokens, cache_implementation='static')


def decode_rates(generate, model, ids, steps: int) -> tuple[float, float]:
    "(prefill tokens/s, decode tokens/s): a 1-token run times the prefill, a (steps+1)-token run adds the steps."
    with torch.inference_mode():
        t1 = seconds(lambda: generate(model, ids, 1))
        tn = seconds(lambda: generate(model, ids, steps + 1))
    return ids.numel() / t1, ids.shape[0] * steps / max(tn - t1, 1e-9)


def build(preset: str, fmt: str):
    "(kollm model, HF model on the same weights in floating point, dtype of the roofline chain) for one format."
    cfg = dataclasses.replace(KoLLMConfig.from_preset(preset), dropout=0.0, max_seq_length=2048)  # RoPE table only
    torch.manual_seed(0)
    base = KoLLM(cfg).eval()
    if fmt == 'fp32': return base, to_hf(base), torch.float32
    if fmt == 'bf16':
        model = base.to(torch.bfloat16)
        return model, to_hf(model), torch.bfloat16
    if fmt == 'int8':  # weight-only int8, bf16 activations; HF baseline: the same model in bf16
        model = base.to(torch.bfloat16)
        hf = to_hf(model)
        return quantize_int8(model), hf, torch.bfloat16  # roofline: bf16 bandwidth over int8 bytes
    if fmt == 'int8-dyn':  # torch.ao dynamic quantisation of the fp32 model (int8 weights and activations, CPU only)
        hf = to_hf(base)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            model = torch.ao.quantization.quantize_dynamic(copy.deepcopy(base), {torch.nn.Linear}, dtype=torch.qint8)
        return model, hf, torch.float32
    raise ValueError(fmt)


def bytes_per_token(model, fmt) -> float:
    "Bytes of matrices a decoding step reads in this format."
    cfg = model.cfg
    return decode_bytes_per_token(cfg, {'fp32': 4, 'bf16': 2, 'int8': 1, 'int8-dyn': 1}[fmt])


def speed_table(presets, formats, repeats, steps, prompt_len, batch, decode_prompt):
    rows = []
    for preset in presets:
        for fmt in formats:
            fmt, compile_it = fmt.removesuffix('+compile'), fmt.endswith('+compile')
            model, hf, chain_dtype = build(preset, fmt)
            k_gen = kollm_generate_compiled if compile_it else kollm_generate
            if compile_it:  # compile every shape the runs below use, and time it
                hf_c = hf_compiled(copy.deepcopy(hf))
                t = time.perf_counter()
                for b in (1, batch): k_gen(model, torch.zeros(b, decode_prompt, dtype=torch.long), 3)
                print(f'{preset} {fmt}: kollm compiled in {time.perf_counter() - t:.0f} s', flush=True)
                t = time.perf_counter()
                for n in (1, steps + 1): hf_generate_compiled(hf_c, torch.zeros(1, decode_prompt, dtype=torch.long), n)
                print(f'{preset} {fmt}: transformers (static cache) compiled in {time.perf_counter() - t:.0f} s', flush=True)
            vocab = model.cfg.vocab_size
            torch.manual_seed(1)
            prompt = torch.randint(0, vocab, (1, prompt_len))
            short = torch.randint(0, vocab, (batch, decode_prompt))
            runs = {k: [] for k in ('k_pre', 'k_dec1', 'k_dec8', 'h_pre', 'h_dec1', 'h_dec8', 'hc_dec1', 'chain')}
            k_gen(model, prompt[:, :16], 2); hf_generate(hf, prompt[:, :16], 2)  # warm-up
            for _ in range(repeats):  # interleaved, so a burst of load hits both alike
                runs['chain'].append(linear_chain_bandwidth(hf, chain_dtype))
                for tag, gen, m in (('k', k_gen, model), ('h', hf_generate, hf)):
                    runs[f'{tag}_pre'].append(decode_rates(gen, m, prompt, 1)[0])
                    runs[f'{tag}_dec1'].append(decode_rates(gen, m, short[:1], steps)[1])
                    runs[f'{tag}_dec8'].append(decode_rates(gen, m, short, max(steps // 2, 2))[1])
                if compile_it: runs['hc_dec1'].append(decode_rates(hf_generate_compiled, hf_c, short[:1], steps)[1])
            med = {k: statistics.median(v) if v else float('nan') for k, v in runs.items()}
            roofline = med['chain'] / bytes_per_token(model, fmt)
            rows.append({'preset': preset, 'weights': fmt + (' compiled' if compile_it else ''),
                         'prefill kollm': med['k_pre'], 'prefill HF': med['h_pre'], 'prefill ratio': med['k_pre'] / med['h_pre'],
                         'decode b1 kollm': med['k_dec1'], 'decode b1 HF': med['h_dec1'],
                         'b1 ratio': med['k_dec1'] / med['h_dec1'],
                         'decode b8 kollm': med['k_dec8'], 'decode b8 HF': med['h_dec8'],
                         'b8 ratio': med['k_dec8'] / med['h_dec8'],
                         'decode b1 HF compiled': med['hc_dec1'], 'b1 ratio to HF compiled': med['k_dec1'] / med['hc_dec1'],
                         'chain GB/s': med['chain'] / 1e9, 'roofline tok/s': roofline,
                         'b1 % of roofline': 100 * med['k_dec1'] / roofline})
            print(markdown_table(rows[-1:]), flush=True)
            del model, hf
            if compile_it: del hf_c
    return rows


def context_sweep(preset, fmt, contexts, steps, repeats):
    "Decode tokens/s at batch 1 after prompts of `contexts` tokens, kollm and HF, and what the cache alone predicts."
    model, hf, chain_dtype = build(preset, fmt)
    chain = statistics.median(linear_chain_bandwidth(hf, chain_dtype) for _ in range(repeats))
    elem = 4 if fmt == 'fp32' else 2
    rows = []
    for ctx in contexts:
        ids = torch.randint(0, model.cfg.vocab_size, (1, ctx))
        kollm_generate_compiled(model, ids, steps + 1)  # compile this length bucket first
        k = statistics.median(decode_rates(kollm_generate, model, ids, steps)[1] for _ in range(repeats))
        kc = statistics.median(decode_rates(kollm_generate_compiled, model, ids, steps)[1] for _ in range(repeats))
        h = statistics.median(decode_rates(hf_generate, hf, ids, steps)[1] for _ in range(repeats))
        rows.append({'context': ctx, 'kollm tok/s': k, 'kollm compiled tok/s': kc, 'HF tok/s': h,
                     'cache MB/token': decode_bytes_per_token(model.cfg, 0, ctx, elem) / 1e6})
        print(markdown_table(rows[-1:]), flush=True)
    # what the roofline predicts once the cache's bytes are added, scaled to the measured speed at the first context
    base_bytes = bytes_per_token(model, fmt)
    for r in rows:
        r['predicted by bytes'] = rows[0]['kollm compiled tok/s'] * base_bytes / (base_bytes + r['cache MB/token'] * 1e6)
    return rows, chain


def plot_context(rows, preset, fmt, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ctx = [r['context'] for r in rows]
    ax.plot(ctx, [r['kollm compiled tok/s'] for r in rows], 'D-', label='kollm generate(compile=True)')
    ax.plot(ctx, [r['kollm tok/s'] for r in rows], 'o-', label='kollm generate')
    ax.plot(ctx, [r['HF tok/s'] for r in rows], 's-', label='transformers generate')
    ax.plot(ctx, [r['predicted by bytes'] for r in rows], 'k--', label='predicted from weight + KV cache bytes (compiled)')
    ax.set(xlabel='context length (tokens)', ylabel='decoding speed (tokens/s)', ylim=(0, None),
           title=f'{preset} {fmt}: batch-1 decoding speed as the context grows')
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f'saved {path}')


def m4_max_statement():
    rows = []
    for name in ('medium', 'large'):
        cfg = KoLLMConfig.from_preset(name)
        b = decode_bytes_per_token(cfg, 2)
        rows.append({'preset': name, 'GB/token fp16': b / 1e9, 'tok/s at 410 GB/s': M4_MAX_BANDWIDTH / b,
                     'at 60 %': 0.6 * M4_MAX_BANDWIDTH / b, 'at 70 %': 0.7 * M4_MAX_BANDWIDTH / b,
                     'GB/s for 50 tok/s': 50 * b / 1e9, '% of peak for 50 tok/s': 100 * 50 * b / M4_MAX_BANDWIDTH})
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--presets', nargs='+', default=['small', 'medium'], help='model presets to measure')
    p.add_argument('--formats', nargs='+', default=['fp32', 'bf16', 'fp32+compile', 'bf16+compile', 'int8', 'int8+compile', 'int8-dyn'],
                   help='weight formats; +compile: kollm generate(compile=True), and transformers with a static cache and a compiled forward as a second baseline')
    p.add_argument('--quick', action='store_true', help='fewer steps and repeats, a short context sweep')
    p.add_argument('--repeats', type=int, default=None, help='interleaved repeats per figure (median reported)')
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: torch\'s choice)')
    p.add_argument('--sweep', default='small:bf16', help='preset:format of the context sweep, or none')
    a = p.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    repeats = a.repeats or (2 if a.quick else 3)
    steps = 8 if a.quick else 24
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads; load average {os.getloadavg()}')
    bw = copy_bandwidth()
    print(f'copy bandwidth: {bw / 1e9:.1f} GB/s\n')
    rows = speed_table(a.presets, a.formats, repeats, steps, prompt_len=512, batch=8, decode_prompt=64)
    parts = [f"`python bench/generate_speed.py {' '.join(sys.argv[1:])}` on {time.strftime('%Y-%m-%d %H:%M')}: torch "
             f"{torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} at the "
             f"start; copy bandwidth {bw / 1e9:.1f} GB/s. Tokens/s, medians of {repeats} interleaved runs.",
             '## Speed', ('speed', rows)]
    print(markdown_table(rows))
    if a.sweep != 'none':
        preset, fmt = a.sweep.split(':')
        contexts = [128, 1024] if a.quick else [128, 512, 1024, 1900]
        sweep, chain = context_sweep(preset, fmt, contexts, steps, repeats)
        parts += [f'## Decode against context ({preset} {fmt}, batch 1; chain {chain / 1e9:.1f} GB/s)',
                  ('decode against context', sweep), '![decode tokens/s against context](../figures/decode_vs_context.png)']
        plot_context(sweep, preset, fmt, FIGURES / 'decode_vs_context.png')
    parts += ["## The M4 Max (410 GB/s) and the plan's 50 tokens/s", ('m4 max', m4_max_statement())]
    print(f"wrote {write_report('generate_speed', 'Generation speed: kollm against transformers and the roofline', parts, rows)}")

if __name__ == '__main__':
    main()
