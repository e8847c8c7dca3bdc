"Checks of chapter 04c's generation that the chapter's lessons do not need: where a row ends, and refusals."
import sys
from pathlib import Path

import pytest
import sentencepiece as spm

from kollm.generate import KOLLM_EOS_ID, generate_ids
from kollm.run import load_checkpoint_model
from kollm.tokens import SPECIAL_IDS, load_tokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'nbs'))  # the chapters' fixtures
from fixtures.korean_run import small_korean_run  # noqa: E402


@pytest.fixture(scope='module')
def small():
    data, _, result = small_korean_run()
    sp = load_tokenizer(data.tokenizer)
    return sp, load_checkpoint_model(result['checkpoint']).eval(), [sp.bos_id(), *sp.encode('대한민국의 수도는')]


def test_the_tokenizer_decides_where_a_row_ends(small, tmp_path):
    "A sample that writes kollm's </s> stops there (given the tokenizer or not); under Llama 2's ids 3 is a piece."
    sp, model, prompt = small
    spm.SentencePieceTrainer.train(sentence_iterator=iter(['모든 국민은 법 앞에 평등하다.'] * 20),
                                   model_prefix=str(tmp_path / 'llama2-ids'), vocab_size=40, hard_vocab_limit=False,
                                   minloglevel=2, unk_id=0, bos_id=1, eos_id=2, pad_id=-1)  # Llama 2's special ids
    llama2_ids = spm.SentencePieceProcessor(model_file=str(tmp_path / 'llama2-ids.model'))
    def sample_of(seed, **eos): return generate_ids(model, [prompt], 100, temperature=1.0, seed=seed, **eos)[0]
    seed, free = next((s, ids) for s in range(20) if sp.eos_id() in (ids := sample_of(s, eos_id=None)))
    until_eos = free[:free.index(sp.eos_id())]
    assert sample_of(seed, tokenizer=sp) == until_eos
    assert sample_of(seed) == until_eos  # no tokenizer: kollm's </s>
    llama_end = sample_of(seed, tokenizer=llama2_ids)
    assert llama_end == (free[:free.index(2)] if 2 in free else free)
    assert llama_end != until_eos
    assert KOLLM_EOS_ID == SPECIAL_IDS['eos_id']


def test_generate_ids_refuses_bad_settings(small):
    _, model, prompt = small
    with pytest.raises(Exception, match='max_new_tokens must be'): generate_ids(model, [prompt], -1)
    with pytest.raises(Exception, match=r'top_p must be in \(0, 1\]'): generate_ids(model, [prompt], 5, top_p=0.0)


def test_a_seed_makes_sampling_reproducible(small):
    _, model, prompt = small
    def sample(seed): return generate_ids(model, [prompt], 30, temperature=1.0, seed=seed)[0]
    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_sampling_settings_are_the_commands_flags_checked():
    "kollm_generate's and kollm_chat's one definition of the sampling flags: 0 for top_k means all, bad values refused."
    from kollm.generate import sampling_settings
    from kollm.runtime import UserError
    assert sampling_settings(top_k=0)['top_k'] is None
    with pytest.raises(UserError, match=r'top_p must be in \(0, 1\]'): sampling_settings(top_p=0.0)
