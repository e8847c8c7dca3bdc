"Checks of chapters 07 and 07a's evaluation helpers that the chapter's lessons do not need: refusals and edge cases."
import random

import pytest
import sentencepiece as spm
import torch

from kollm.hangul import hangul_share
from kollm.eval import check_vocabulary, inference_tokenizer
from kollm.fluency import KOREAN_PROMPTS, korean_measures, korean_table, passages_like
from kollm.model import KoLLM, KoLLMConfig
from kollm.runtime import UserError

SENTENCE = '모든 국민은 법 앞에 평등하다.'


def tokenizer(folder, name: str, **ids):
    "A 40-piece SentencePiece model trained on one sentence, with the special ids given."
    spm.SentencePieceTrainer.train(sentence_iterator=iter([SENTENCE] * 20), model_prefix=str(folder / name),
                                   vocab_size=40, hard_vocab_limit=False, minloglevel=2, **ids)
    return folder / f'{name}.model'


def test_inference_tokenizer_refuses_what_cannot_score(tmp_path):
    with pytest.raises(UserError, match='has no </s>'): inference_tokenizer(tokenizer(tmp_path, 'no-eos', eos_id=-1))
    with pytest.raises(UserError, match='no tokenizer at'): inference_tokenizer(tmp_path / 'nowhere.model')


def test_check_vocabulary_refuses_more_pieces_than_ids(tmp_path):
    sp = inference_tokenizer(tokenizer(tmp_path, 'plain'))
    with torch.device('meta'):
        narrow = KoLLM(KoLLMConfig(vocab_size=sp.vocab_size() - 1, hidden_size=64, num_layers=1, num_heads=4,
                                   num_kv_heads=2))
    with pytest.raises(UserError, match='pieces, more than the model'): check_vocabulary(narrow, sp, 'tok.model')


def test_korean_measures_share_the_cleaning_rule_for_hangul():
    assert korean_measures('ABC 123 !!!')['hangul'] == 0.0
    mixed = '서울 Seoul 2024년 ㅋㅋ 漢字 \u1100\u1161!'  # syllables, Latin, digits, compatibility jamo, Hanja, old jamo
    measures = korean_measures(mixed)
    assert measures['hangul'] == hangul_share(mixed) == 7 / 14  # one rule for samples and training documents
    assert measures['letters'] == 14 / 19


def test_passages_like_matches_each_sample_length(tmp_path):
    reference = tmp_path / 'valid.txt'
    rng = random.Random(0)
    words = ['대한민국은', '민주공화국이다.', '모든', '권력은', '국민으로부터', '나온다.']
    reference.write_text('\n\n'.join(' '.join(rng.choices(words, k=40)) for _ in range(5)) + '\n', encoding='utf-8')
    samples = ['가' * n for n in (0, 3, 17, 60)]
    for sample, passage in zip(samples, passages_like(samples, reference)):
        last = passage.split()[-1] if passage.strip() else ''  # an empty sample gets an empty passage
        assert len(sample) <= len(passage) <= len(sample) + len(last), (sample, passage)
    with pytest.raises(ValueError, match='shorter than the samples'): passages_like(['가' * 10_000], reference)


def test_korean_table_samples_are_reproducible(tmp_path):
    sp = inference_tokenizer(tokenizer(tmp_path, 'plain'))
    torch.manual_seed(0)
    model = KoLLM(KoLLMConfig(vocab_size=sp.vocab_size(), hidden_size=32, num_layers=1, num_heads=4, num_kv_heads=2,
                              intermediate_size=64, max_seq_length=64, dropout=0.0)).eval()
    reference = tmp_path / 'valid.txt'
    reference.write_text('\n\n'.join([SENTENCE * 40] * 3) + '\n', encoding='utf-8')
    table = lambda: korean_table(model, sp, reference, prompts=KOREAN_PROMPTS[:2], max_new_tokens=20)
    assert table().attrs['samples'] == table().attrs['samples']
