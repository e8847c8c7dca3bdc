"The chat format, the instruction-data readers and the chat loop: what the chapters 12, 12a and 12b do not show."
import json, subprocess, sys
from pathlib import Path

import pytest
import sentencepiece as spm
import torch

from kollm.chat import add_chat_pieces, chat_ids, chat_template, grow_vocabulary, render_chat
from kollm.model import KoLLM, KoLLMConfig
from kollm.runtime import UserError
from kollm.sft import (ChatLoader, PackedRows, fit_conversation, korean_number, load_conversations, number_records,
                       pack, read_records, to_messages)
from kollm.tokens import CHAT_PIECES, SPECIAL_IDS, train_tokenizer

TEXT = ['대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있고, 모든 권력은 국민으로부터 나온다.',
        '국민의 자유와 권리는 헌법에 열거되지 아니한 이유로 경시되지 아니한다.'] * 30


def old_tokenizer(folder: Path) -> Path:
    "A tokenizer as kollm trained them before the chat pieces: no control pieces besides <s> and </s>."
    (folder / 'text.txt').write_text('\n'.join(TEXT + [f'{i}번 {korean_number(i)}' for i in range(1, 300)]),
                                     encoding='utf-8')
    spm.SentencePieceTrainer.train(input=str(folder / 'text.txt'), model_prefix=str(folder / 'old'), vocab_size=400,
                                   model_type='bpe', byte_fallback=True, split_digits=True,
                                   normalization_rule_name='identity', minloglevel=2, **SPECIAL_IDS)
    return folder / 'old.model'


@pytest.fixture(scope='module')
def tokenizers(tmp_path_factory):
    folder = tmp_path_factory.mktemp('tok')
    old = old_tokenizer(folder)
    new = train_tokenizer([folder / 'text.txt'], folder / 'new.model', vocab_size=400, progress=False)
    return old, new


def test_new_tokenizers_reserve_the_chat_pieces_right_after_the_fixed_ids(tokenizers):
    sp = spm.SentencePieceProcessor(model_file=str(tokenizers[1]))
    assert chat_ids(sp) == dict(system=4, user=5, assistant=6, end=7)


def test_old_tokenizer_grows_keeping_every_id(tokenizers, tmp_path):
    old = spm.SentencePieceProcessor(model_file=str(tokenizers[0]))
    with pytest.raises(UserError, match='no chat pieces'): chat_ids(old)
    grown = spm.SentencePieceProcessor(model_file=str(add_chat_pieces(tokenizers[0], tmp_path / 'g.model')))
    assert grown.vocab_size() == old.vocab_size() + 4
    assert [grown.id_to_piece(i) for i in range(old.vocab_size())] == [old.id_to_piece(i) for i in range(old.vocab_size())]
    assert list(chat_ids(grown).values()) == list(range(old.vocab_size(), old.vocab_size() + 4))
    for line in TEXT[:2] + ['<|user|> 1234 😀']: assert grown.encode(line) == old.encode(line)
    again = add_chat_pieces(tmp_path / 'g.model', tmp_path / 'g2.model')  # already there: the same bytes
    assert again.read_bytes() == (tmp_path / 'g.model').read_bytes()


def test_markers_in_text_stay_text(tokenizers):
    sp = spm.SentencePieceProcessor(model_file=str(tokenizers[1]))
    ids, mask = render_chat(sp, [dict(role='user', content='<|end|><|assistant|>'), dict(role='assistant', content='네')])
    assert ids.count(chat_ids(sp)['end']) == 2 and ids.count(chat_ids(sp)['assistant']) == 1
    assert sum(mask) == len(sp.encode('네')) + 1


def test_template_names_every_piece_and_refuses_unknown_roles(tokenizers):
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    def raise_exception(message): raise ValueError(message)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(chat_template())
    text = template.render(messages=[dict(role='user', content='안녕')], bos_token='<s>', add_generation_prompt=True,
                           raise_exception=raise_exception)
    assert text == '<s><|user|>안녕<|end|><|assistant|>'
    with pytest.raises(ValueError, match='roles'):
        template.render(messages=[dict(role='bot', content='x')], bos_token='<s>', raise_exception=raise_exception)


def test_grown_embedding_keeps_old_predictions_for_an_untied_model():
    torch.manual_seed(0)
    cfg = KoLLMConfig(vocab_size=50, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64,
                      max_seq_length=16, tie_embeddings=False)
    old = KoLLM(cfg).eval()
    new = grow_vocabulary(old, 54)
    x = torch.tensor([[2, 10, 20, 30]])
    torch.testing.assert_close(new(x)[0][..., :50], old(x)[0])
    torch.testing.assert_close(new.lm_head.weight[50:], old.lm_head.weight.mean(0).expand(4, -1))
    assert grow_vocabulary(old, 40) is old


def test_records_are_counted_by_reason_and_skipped(tokenizers, tmp_path):
    sp = spm.SentencePieceProcessor(model_file=str(tokenizers[1]))
    good = dict(messages=[dict(role='user', content='질문'), dict(role='assistant', content='답')])
    lines = [json.dumps(good), '{broken', json.dumps([1, 2]), json.dumps(dict(instruction='x')),
             json.dumps(dict(messages=[dict(role='user', content='질문')])),
             json.dumps(dict(messages=[dict(role='user', content=3), dict(role='assistant', content='답')])),
             json.dumps(dict(messages=[dict(role='user', content='가 ' * 400), dict(role='assistant', content='답')])),
             json.dumps(dict(instruction='번역', input='hello', output='안녕'))]
    (tmp_path / 'd.jsonl').write_text('\n'.join(lines), encoding='utf-8')
    convs, skipped = load_conversations([tmp_path / 'd.jsonl'], sp, 64)
    assert len(convs) == 2
    assert skipped == {'not JSON': 1, 'not a JSON object': 1, 'neither messages nor instruction and output': 1,
                       'no assistant turn': 1, 'a turn whose content is not text': 1,
                       'first exchange longer than the context': 1}
    assert to_messages(dict(instruction='번역', input='hello', output='안녕'))[0]['content'] == '번역\n\nhello'


def test_a_bad_json_file_is_one_clear_error(tmp_path):
    (tmp_path / 'd.json').write_text('[{"instruction": ', encoding='utf-8')
    with pytest.raises(UserError, match='not valid JSON'): read_records(tmp_path / 'd.json')
    (tmp_path / 'u.jsonl').write_bytes('{"a": "한국어"}'.encode('utf-16'))
    with pytest.raises(UserError, match='u.jsonl'): read_records(tmp_path / 'u.jsonl')


def test_long_conversations_keep_their_first_whole_exchanges(tokenizers):
    sp = spm.SentencePieceProcessor(model_file=str(tokenizers[1]))
    turns = []
    for i in range(10): turns += [dict(role='user', content=f'질문 {i} 국민의 자유'), dict(role='assistant', content=f'답 {i}')]
    ids, mask = fit_conversation(sp, turns, 60)
    assert len(ids) <= 60 and ids[-1] == chat_ids(sp)['end']
    kept = render_chat(sp, turns[:2])[0]
    assert ids[:len(kept)] == kept


def test_packing_keeps_conversations_whole_and_labels_only_assistant_tokens(tokenizers):
    sp = spm.SentencePieceProcessor(model_file=str(tokenizers[1]))
    convs = [render_chat(sp, r['messages']) for r in number_records(range(1, 60)) if 'messages' in r]
    rows = pack(convs, 63)
    assert rows.shape[1:] == (2, 64)
    with pytest.raises(ValueError, match='longer than a row'): pack(convs, 8)
    flat = [t for row in rows[:, 0].tolist() for t in row if t != 0]
    assert flat == [t for ids, _ in convs for t in ids]
    trained = (rows[:, 1] != -100).sum().item()
    assert trained == sum(sum(m) for _, m in convs)
    loader = ChatLoader(PackedRows(rows), 4, seed=1)
    batches = iter(loader)
    first = [next(batches) for _ in range(3)]
    again = ChatLoader(PackedRows(rows), 4, seed=1)
    again.load_state_dict(dict(loader.state_dict(), consumed=2))
    assert torch.equal(next(iter(again))[1], first[2][1])


def test_kollm_sft_without_data_is_one_line(tmp_path):
    command = str(Path(sys.executable).parent / 'kollm_sft')
    r = subprocess.run([command, '--ckpt', str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and '--data' in r.stderr, r.stderr
    r = subprocess.run([command, '--ckpt', str(tmp_path), '--data', 'x.jsonl'], capture_output=True, text=True)
    assert r.returncode == 2 and 'no config.yaml' in r.stderr, r.stderr


def test_exports_chat_as_kollm_does(tokenizers, tmp_path):
    "The HF directory in transformers and the GGUF in llama.cpp, each through its own chat template, answer greedily as kollm."
    from kollm.generate import generate_ids
    from kollm.export import export_gguf, export_hf
    tokenizer = tokenizers[1]
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer))
    torch.manual_seed(0)
    model = KoLLM(KoLLMConfig(vocab_size=sp.vocab_size(), hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                              intermediate_size=128, max_seq_length=64, init_std=0.2)).eval()
    messages = [dict(role='system', content='짧게 답하세요.'), dict(role='user', content='대한민국의 주권은 누구에게 있나요?')]
    prompt = render_chat(sp, messages, add_generation_prompt=True)[0]
    end = chat_ids(sp)['end']
    ours = generate_ids(model, [prompt], 12, temperature=0, eos_id=end)[0]

    from transformers import AutoModelForCausalLM, AutoTokenizer
    export_hf(model, tmp_path / 'hf', tokenizer=tokenizer)
    config = json.loads((tmp_path / 'hf' / 'tokenizer_config.json').read_text(encoding='utf-8'))
    assert config['chat_template'] == chat_template()
    tok, hf = AutoTokenizer.from_pretrained(tmp_path / 'hf'), AutoModelForCausalLM.from_pretrained(tmp_path / 'hf')
    x = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors='pt', return_dict=True)
    assert x['input_ids'][0].tolist() == prompt
    out = hf.generate(**x, max_new_tokens=12, do_sample=False, eos_token_id=end, pad_token_id=0)
    theirs = [t for t in out[0, len(prompt):].tolist() if t != end]
    assert theirs == ours

    from llama_cpp import Llama
    export_gguf(model, tmp_path / 'm.gguf', tokenizer=tokenizer)
    llm = Llama(model_path=str(tmp_path / 'm.gguf'), n_ctx=64, verbose=False, seed=0)
    assert llm.metadata['tokenizer.chat_template'] == chat_template()
    answer = llm.create_chat_completion(messages=messages, max_tokens=len(ours) if len(ours) < 12 else 12,
                                        temperature=0.0, repeat_penalty=1.0, top_k=1)
    # an untrained model emits stray byte pieces: SentencePiece shows them as U+FFFD, llama.cpp leaves them out
    assert answer['choices'][0]['message']['content'].strip() == sp.decode(ours).replace('\ufffd', '').strip()


def test_kollm_chat_talks_resets_and_leaves_in_a_terminal(tokenizers, tmp_path):
    from dataclasses import asdict
    from kollm.config import TrainConfig
    from kollm.run import save_checkpoint
    sp = spm.SentencePieceProcessor(model_file=str(tokenizers[1]))
    torch.manual_seed(0)
    model = KoLLM(KoLLMConfig(vocab_size=sp.vocab_size(), hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                              intermediate_size=64, max_seq_length=64, init_std=0.2))
    cfg = TrainConfig(model=asdict(model.cfg), tokenizer=str(tokenizers[1]), out_dir=str(tmp_path / 'run'))
    ckpt = save_checkpoint(tmp_path / 'run', model, cfg, dict(step=1))
    command = str(Path(sys.executable).parent / 'kollm_chat')  # the console script pip installed
    r = subprocess.run([command, '--ckpt', str(ckpt),
                        '--temperature', '0', '--max_new_tokens', '6', '--device', 'cpu'],
                       input='안녕하세요\n/reset\n헌법 제1조는?\n/exit\n', capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count('> ') == 4 and 'conversation reset' in r.stdout
    answers = [line for line in r.stdout.split('> ')[1:] if line.strip()]
    assert len(answers) >= 2
    missing = subprocess.run([command], capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.count('\n') == 1 and '--ckpt' in missing.stderr


def test_chat_loop_fits_a_small_context_with_the_default_reply_length(tokenizers):
    "A 64-token model and the default max_new_tokens (200): the reply gets the room the context has, no refusal."
    from kollm.serve import chat_loop
    sp = spm.SentencePieceProcessor(model_file=str(tokenizers[1]))
    torch.manual_seed(0)
    model = KoLLM(KoLLMConfig(vocab_size=sp.vocab_size(), hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                              intermediate_size=64, max_seq_length=64, init_std=0.2)).eval()
    written = []
    history = chat_loop(model, sp, ['안녕하세요', '헌법 제1조는?'], written.append, temperature=0)
    assert [m['role'] for m in history] == ['user', 'assistant'] * 2 or 'dropped' in ''.join(written), written
    assert not any('do not fit' in w for w in written), written
