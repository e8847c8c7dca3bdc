"A tiny Korean model and tokenizer behind `kollm_serve`'s `ChatServer`, started on a free port: what the serving tests share."
from pathlib import Path

import sentencepiece as spm
import torch

from kollm.model import KoLLM, KoLLMConfig
from kollm.serve import ChatServer
from kollm.tokens import train_tokenizer

TEXT = ['대한민국은 민주공화국이다. 대한민국의 주권은 국민에게 있고, 모든 권력은 국민으로부터 나온다.',
        '국민의 자유와 권리는 헌법에 열거되지 아니한 이유로 경시되지 아니한다.'] * 30


def start_server(folder: Path, # scratch folder for the tokenizer
                 name: str, # the model's name in the API
                 hidden: int = 64, layers: int = 2, # the model's size
                 **server_kw, # ChatServer's limits (max_tokens, max_body, ...)
                ) -> ChatServer:
    "A `ChatServer` with a freshly made tokenizer and a seeded random model, serving from background threads."
    (folder / 'text.txt').write_text('\n'.join(TEXT), encoding='utf-8')
    sp = spm.SentencePieceProcessor(model_file=str(train_tokenizer([folder / 'text.txt'], folder / 't.model',
                                                                   vocab_size=330, progress=False)))
    torch.manual_seed(0)
    model = KoLLM(KoLLMConfig(vocab_size=sp.vocab_size(), hidden_size=hidden, num_layers=layers, num_heads=hidden // 16,
                              num_kv_heads=hidden // 32, intermediate_size=2 * hidden, max_seq_length=96,
                              init_std=0.2)).eval()
    return ChatServer(('127.0.0.1', 0), model, sp, name, **server_kw).start()
