"""Chapter 08's export and import, beyond the lesson: the refusals, the other precisions and shapes, the RoPE
permutation against an interleaved RoPE, the GGUF token types, a Hub model's tokenizer of other special ids, and the
console functions (the chapter keeps one check per idea)."""
import dataclasses, os, random, shutil
from dataclasses import asdict
from unittest import mock

import numpy as np
import pytest
import torch
import torch.nn.functional as F

gguf = pytest.importorskip('gguf')
llama_cpp = pytest.importorskip('llama_cpp')

from kollm.sources import embedded_corpus
from kollm.eval import evaluate_text, load_for_inference
from kollm.export import (bpe_vocab_and_merges, check_export_folder, export_gguf, export_hf, hf_tokenizer, import_hf,
                          kollm_export, kollm_import, permute_rope_rows)
from kollm.model import KoLLM, KoLLMConfig, to_hf
from kollm.config import TrainConfig, load_train_config
from kollm.rope import apply_rope, rope_cache, rope_frequencies
from kollm.run import save_checkpoint
from kollm.runtime import DEBUG_ENV, UserError
from kollm.tokens import SPECIAL_IDS, iter_lines_of, load_tokenizer, train_tokenizer


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    "The chapter's opinionated model (init_std 0.2), its 1,000-piece tokenizer and its checkpoint."
    d = tmp_path_factory.mktemp('export')
    tokenizer = train_tokenizer(embedded_corpus(), d / 'tok.model', vocab_size=1000, progress=False)
    torch.manual_seed(0)
    cfg = KoLLMConfig(vocab_size=1000, hidden_size=96, num_layers=2, num_heads=4, num_kv_heads=2,
                      intermediate_size=256, max_seq_length=256, dropout=0.0, init_std=0.2)
    model = KoLLM(cfg).eval()
    ckpt = save_checkpoint(d / 'run', model, TrainConfig(model=asdict(cfg), tokenizer=str(tokenizer),
                                                         out_dir=str(d / 'run')), dict(step=0))
    sp = load_tokenizer(tokenizer)
    ids = [[sp.bos_id(), *sp.encode(p)] for p in ['대한민국은 민주공화국이다.', '모든 국민은']]
    return dict(dir=d, tokenizer=tokenizer, sp=sp, cfg=cfg, model=model, ckpt=ckpt, ids=ids)


def llama_greedy(llm, ids: list[int], n: int) -> tuple[list[int], np.ndarray]:
    "Greedy continuation of `ids` by llama.cpp, and the logits of the prompt's last position."
    llm.reset(); llm.eval(ids)
    first_logits, out = np.array(llm.scores[llm.n_tokens - 1]), []
    for _ in range(n):
        out.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
        llm.eval([out[-1]])
    return out, first_logits


def open_gguf(path):
    f32_cache = dict(type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    return llama_cpp.Llama(model_path=str(path), n_ctx=256, logits_all=True, verbose=False, **f32_cache)


def test_stock_llama_tokenizer_differs_on_runs_of_spaces(work):
    "A stock `LlamaTokenizer` over the same pieces and merges splits some lines otherwise: all with runs of spaces."
    from transformers import LlamaTokenizer
    sp = work['sp']
    vocab, merges = bpe_vocab_and_merges(sp)
    stock = LlamaTokenizer(vocab=vocab, merges=merges, unk_token='<unk>', bos_token='<s>', eos_token='</s>')
    lines = list(iter_lines_of(embedded_corpus()))
    wrong = [t for t in lines if stock.tokenize(t) != sp.encode(t, out_type=str)]
    assert wrong and all('  ' in t for t in wrong)


def test_other_normalisation_or_unigram_refused(work):
    import sentencepiece as spm
    text = ['다람쥐 헌 쳇바퀴에 타고파'] * 10
    for name, kw, message in (('nfkc', dict(model_type='bpe', normalization_rule_name='nmt_nfkc'), 'normalises text'),
                              ('unigram', dict(model_type='unigram'), 'not BPE')):
        spm.SentencePieceTrainer.train(sentence_iterator=iter(text), model_prefix=str(work['dir'] / name), vocab_size=40,
                                       hard_vocab_limit=False, minloglevel=2, **kw, **SPECIAL_IDS)
        with pytest.raises(ValueError, match=message): hf_tokenizer(load_tokenizer(work['dir'] / f'{name}.model'))


def test_half_precision_hf_export(work):
    "Half the bytes, logits within float16's rounding; no accidental replacement, no model without its tokenizer."
    from transformers import AutoModelForCausalLM
    model, d = work['model'], work['dir']
    full_dir = export_hf(work['ckpt'], d / 'hf-full')
    half_dir = export_hf(model, d / 'hf-fp16', tokenizer=work['tokenizer'], dtype='fp16')
    half = AutoModelForCausalLM.from_pretrained(half_dir, local_files_only=True, dtype=torch.float32).eval()
    x = torch.tensor([work['ids'][0]])
    with torch.no_grad(): torch.testing.assert_close(half(x).logits, model(x)[0], atol=0.05, rtol=0)
    sizes = [(p / 'model.safetensors').stat().st_size for p in (half_dir, full_dir)]
    assert sizes[0] < 0.6 * sizes[1], sizes
    with pytest.raises(UserError, match='overwrite=True'): export_hf(work['ckpt'], full_dir)
    with pytest.raises(ValueError, match='tokenizer=PATH'): export_hf(model, d / 'x')
    with pytest.raises(ValueError, match='dtype must be'): export_hf(work['ckpt'], d / 'x', dtype='int8')


def test_hub_tokenizer_with_other_special_ids(work):
    "Llama 2's ids (unk 0, <s> 1, </s> 2, no pad): scored as transformers' own logits say; no tokenizer: asked for."
    import sentencepiece as spm
    from transformers import LlamaConfig, LlamaForCausalLM
    d, rng = work['dir'], random.Random(0)
    words = ['대한민국', '국민', '법률', '정부', '국회', '대통령', '헌법', '권리', '의무', '자유', '선거', '지방', '은', '의']
    lines = [' '.join(rng.choice(words) for _ in range(rng.randint(3, 9))) + '.' for _ in range(300)]
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_prefix=str(d / 'llama2-ids'), vocab_size=320,
                                   model_type='bpe', byte_fallback=True, hard_vocab_limit=False, minloglevel=2,
                                   unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=320, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                         bos_token_id=1, eos_token_id=2, pad_token_id=None,
                                         tie_word_embeddings=False)).eval()
    llama.save_pretrained(d / 'hub-bare')
    shutil.copytree(d / 'hub-bare', d / 'hub')
    shutil.copyfile(d / 'llama2-ids.model', d / 'hub' / 'tokenizer.model')
    model, sp, _ = load_for_inference(import_hf(d / 'hub', d / 'hub-import'), device='cpu', precision='fp32')
    assert [sp.unk_id(), sp.bos_id(), sp.eos_id(), sp.pad_id()] == [0, 1, 2, -1]
    (d / 'hub.txt').write_text('\n\n'.join(lines[:20]) + '\n', encoding='utf-8')
    scored = evaluate_text(model, sp, d / 'hub.txt')
    with torch.no_grad():
        docs = [torch.tensor([[1, *sp.encode(t), 2]]) for t in lines[:20]]
        nll = sum(F.cross_entropy(llama(x[:, :-1]).logits[0], x[0, 1:], reduction='sum').item() for x in docs)
    assert scored['tokens'] == sum(x.shape[1] - 1 for x in docs)
    assert abs(scored['nll'] - nll / scored['tokens']) < 1e-4
    bare = import_hf(d / 'hub-bare', d / 'bare-import')
    assert load_train_config(str(bare / 'config.yaml')).tokenizer == ''
    with pytest.raises(Exception, match='--tokenizer'): load_for_inference(bare, device='cpu')
    assert load_for_inference(bare, d / 'llama2-ids.model', device='cpu')[1].eos_id() == 2


def test_import_refuses_what_kollm_lacks(work):
    d = work['dir']
    scaled = to_hf(work['model'])
    scaled.config.rope_parameters = {'rope_type': 'linear', 'factor': 2.0, 'rope_theta': 10000.0}
    scaled.save_pretrained(d / 'scaled')
    with pytest.raises(Exception, match="rope_type='linear'"): import_hf(d / 'scaled', d / 'nope')
    with pytest.raises(UserError, match='no config.json'): import_hf(d / 'run', d / 'nope')


def test_untied_padded_gguf(work):
    "An untied model carries `output.weight`; ids beyond the tokenizer are `[PAD…]`, UNUSED; llama.cpp decodes alike."
    torch.manual_seed(1)
    untied = KoLLM(dataclasses.replace(work['cfg'], tie_embeddings=False, vocab_size=1024)).eval()
    path = export_gguf(untied, work['dir'] / 'untied.gguf', tokenizer=work['tokenizer'])
    reader = gguf.GGUFReader(path)
    assert 'output.weight' in {t.name for t in reader.tensors}
    assert reader.fields['tokenizer.ggml.tokens'].contents()[-1] == '[PAD1023]'
    assert reader.fields['tokenizer.ggml.token_type'].contents()[-24:] == [gguf.TokenType.UNUSED] * 24
    ids = work['ids'][0]
    kollm_greedy = untied.generate(torch.tensor([ids]), 20, temperature=0)[0, len(ids):].tolist()
    assert llama_greedy(open_gguf(path), ids, 20)[0] == kollm_greedy


def test_half_precision_gguf(work):
    "Token types and ids; a float16 file half the size, logits within a tenth; a float16 cache close; no replacing."
    model, d = work['model'], work['dir']
    full = export_gguf(work['ckpt'], d / 'full.gguf')
    reader = gguf.GGUFReader(full)  # the pieces' types llama.cpp acts on, and the special ids
    field = lambda key: reader.fields[key].contents()
    T = gguf.TokenType
    assert field('general.architecture') == 'llama'
    assert field('tokenizer.ggml.token_type')[:9] == [T.CONTROL, T.UNKNOWN, T.CONTROL, T.CONTROL] + [T.CONTROL] * 4 + [
        T.BYTE]  # pad, unk, <s>, </s>, chapter 12's four chat pieces, then the bytes
    assert [field(f'tokenizer.ggml.{k}_token_id') for k in ('padding', 'unknown', 'bos', 'eos')] == [0, 1, 2, 3]
    half = export_gguf(model, d / 'half.gguf', tokenizer=work['tokenizer'], dtype='fp16')
    assert half.stat().st_size < 0.6 * full.stat().st_size
    llm = open_gguf(half)
    f16_cache = llama_cpp.Llama(model_path=str(full), n_ctx=256, logits_all=True, verbose=False)  # llama.cpp's default
    with torch.no_grad():
        for ids in work['ids']:
            ours = model(torch.tensor([ids]))[0][0, -1].numpy()
            assert np.abs(llama_greedy(llm, ids, 1)[1] - ours).max() < 0.1
            assert np.abs(llama_greedy(f16_cache, ids, 1)[1] - ours).max() < 0.05  # a float16 cache: about 1e-3
    with pytest.raises(UserError, match='overwrite=True'): export_gguf(work['ckpt'], full)


def test_console_functions(work, capsys):
    "`kollm_export` and `kollm_import` as called from Python: the files they write, the one-line refusal."
    from fastcore.test import ExceptionExpected
    d, ckpt = work['dir'], work['ckpt']
    kollm_export(ckpt=str(ckpt), out=str(d / 'cli'), gguf=True, quiet=True)
    assert sorted(f.name for f in (d / 'cli').iterdir()) == [
        'config.json', 'generation_config.json', 'kollm_export.json', 'model.safetensors', 'special_tokens_map.json',
        'tokenizer.json', 'tokenizer.model', 'tokenizer_config.json']
    assert (d / 'cli.gguf').stat().st_size > 0
    kollm_import(hf_dir=str(d / 'cli'), out=str(d / 'cli-import'))
    assert sorted(f.name for f in (d / 'cli-import' / 'checkpoints' / 'step-0000000').iterdir()) == [
        'config.yaml', 'model.safetensors']
    with mock.patch.dict(os.environ, {DEBUG_ENV: '1'}), ExceptionExpected(UserError, regex='--out'):
        kollm_export(ckpt=str(ckpt))
    with pytest.raises(UserError, match='which the export reads from'):
        export_hf(ckpt, ckpt.parent.parent, overwrite=True)


def test_continued_pretraining_from_an_import(work):
    "The export read back (decoding, special ids); `kollm_train --resume` on its import: from its weights, then on."
    from kollm.run import list_checkpoints, load_checkpoint_model
    from kollm.tokens import tokenize_text
    from kollm.train import train
    d, model = work['dir'], work['model']
    from transformers import AutoModelForCausalLM, AutoTokenizer
    hf_dir = export_hf(work['ckpt'], d / 'hf-continue')
    tok, prompts = AutoTokenizer.from_pretrained(hf_dir, local_files_only=True), ['대한민국은 민주공화국이다.', '모든 국민은']
    assert [tok.decode(ids, skip_special_tokens=True) for ids in work['ids']] == prompts
    config = AutoModelForCausalLM.from_pretrained(hf_dir, local_files_only=True).config
    assert [config.pad_token_id, config.bos_token_id, config.eos_token_id] == [0, 2, 3]
    imported = import_hf(hf_dir, d / 'continued')
    cfg = load_train_config(str(imported / 'config.yaml'))
    assert load_tokenizer(cfg.tokenizer).encode(prompts[0]) == work['sp'].encode(prompts[0])
    assert list_checkpoints(d / 'continued') == []  # weights only: nothing for --resume to continue
    lines = list(iter_lines_of(embedded_corpus()))
    for split, part in (('train', lines[:-40]), ('valid', lines[-40:])):
        (d / f'{split}.txt').write_text('\n\n'.join(part) + '\n', encoding='utf-8')
        tokenize_text(d / f'{split}.txt', cfg.tokenizer, d / 'tokens', threads=1, progress=False)
    continued = load_train_config(str(imported / 'config.yaml'), [
        f"tokens_dir={d / 'tokens'}", 'seq_len=64', 'batch_size=2', 'grad_accum=1', 'max_steps=1', 'lr=0', 'min_lr=0',
        'warmup_steps=0', 'eval_batches=1', 'device=cpu', 'precision=fp32'])
    logged = []
    first = train(continued, resume=True, progress=False, log=logged.append)
    start = load_checkpoint_model(first['checkpoint'])  # a learning rate of zero: still the imported weights
    assert [n for n, w in model.state_dict().items() if not torch.equal(start.state_dict()[n], w)] == []
    train(dataclasses.replace(continued, max_steps=2), resume=True, progress=False, log=logged.append)
    assert [p.name for p in list_checkpoints(d / 'continued')] == ['step-0000001', 'step-0000002']
    assert any(line.startswith('resumed from') and 'step-0000001' in line for line in logged), logged


def test_llama_cpp_tokenizer_differs_on_runs_of_spaces(work):
    "llama.cpp's `llama` tokenizer does not collapse runs of spaces: the lines it splits otherwise all have them."
    sp = work['sp']
    llm = open_gguf(export_gguf(work['ckpt'], work['dir'] / 'tokenizer-check.gguf'))
    llama_ids = lambda t: llm.tokenize(t.encode('utf-8'), add_bos=True, special=False)
    lines = list(iter_lines_of(embedded_corpus()))
    wrong = [t for t in lines if llama_ids(t) != [sp.bos_id(), *sp.encode(t)]]
    assert wrong and all('  ' in t for t in wrong)
    assert llama_ids('법률  제  호') != [sp.bos_id(), *sp.encode('법률  제  호')]


def test_export_folder_refusals(tmp_path):
    "A folder the user filled is never replaced; nor is a folder around the checkpoint being read (the run would go)."
    (tmp_path / 'notes.txt').write_text('mine')
    with pytest.raises(UserError, match='holds no kollm export'): check_export_folder(tmp_path, overwrite=True)
    with pytest.raises(UserError, match='which the export reads from'):
        check_export_folder(tmp_path / 'run' / 'checkpoints', tmp_path / 'run' / 'checkpoints' / 'step-0000008')


def rope_interleaved(x: torch.Tensor, theta: float = 10000.0) -> torch.Tensor:
    "llama.cpp's RoPE: rotate neighbouring pairs (2i, 2i+1) of (heads, seq, head_dim) by position × θᵢ."
    angles = torch.outer(torch.arange(x.shape[-2], dtype=torch.float32), rope_frequencies(x.shape[-1], theta))
    pairs = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2).contiguous())
    return torch.view_as_real(pairs * torch.polar(torch.ones_like(angles), angles)).flatten(-2)


def test_permuted_rows_under_interleaved_rope_give_the_same_scores():
    "Rotate the kollm way then permute, or permute the projection and rotate neighbours: the same vectors and scores."
    torch.manual_seed(0)
    heads, head_dim, hidden, seq = 4, 16, 32, 10
    w_q, w_k, h = torch.randn(heads * head_dim, hidden), torch.randn(heads * head_dim, hidden), torch.randn(seq, hidden)
    cos, sin = rope_cache(head_dim, seq)
    split = lambda w: (h @ w.T).reshape(seq, heads, head_dim).transpose(0, 1)  # (heads, seq, head_dim)
    q_kollm, k_kollm = apply_rope(split(w_q)[None], cos, sin)[0], apply_rope(split(w_k)[None], cos, sin)[0]
    q_llama = rope_interleaved(split(permute_rope_rows(w_q, heads)))
    k_llama = rope_interleaved(split(permute_rope_rows(w_k, heads)))
    order = permute_rope_rows(torch.arange(head_dim)[:, None], 1).flatten()  # where each feature of a head goes
    assert order[:8].tolist() == [0, 8, 1, 9, 2, 10, 3, 11]
    torch.testing.assert_close(q_llama, q_kollm[..., order], atol=1e-4, rtol=0)
    torch.testing.assert_close(q_llama @ k_llama.transpose(-1, -2), q_kollm @ k_kollm.transpose(-1, -2), atol=1e-3,
                               rtol=1e-4)
    assert not torch.allclose(rope_interleaved(split(w_q)), q_kollm, atol=1e-2), 'equal without the permutation'
