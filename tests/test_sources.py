"""Every source reader on every fixture and every way a file can go wrong: the batteries behind chapters 05 and 05a_dumps.

Each fixture in nbs/fixtures/sources is written in its source's real format (fixtures/sources/FORMATS.md gives the
schemas and where they were checked); the counts below are what each was built to contain. Archives are cut at every
byte, every wiki and namumark construct is stripped, every Modu and AI Hub schema is read, and a folder as users have
them goes through `prepare` and `kollm_prepare`.
"""
import bz2, gzip, json, lzma, random, re, shutil, subprocess, sys, zlib
from collections import Counter
from pathlib import Path

import zstandard
from fastcore.test import test_eq as expect_eq

from kollm.sources import DECODERS, Report, read_jsonl
from kollm.dumps import READERS, detect_format, read_aihub, read_modu, read_namuwiki, read_wikipedia, strip_namumark, strip_wikitext
from kollm.clean import normalize_text
from kollm.hangul import hangul_share
from kollm.pipeline import prepare

FIXTURES = Path(__file__).resolve().parents[1] / 'nbs' / 'fixtures' / 'sources'
PACKERS = {'.gz': gzip.compress, '.bz2': lambda b: bz2.compress(b, 1),  # level 1: 100 kB blocks, so several
           '.xz': lzma.compress, '.zst': zstandard.ZstdCompressor().compress}


def compressible_jsonl() -> bytes:
    "3,000 JSON lines of generated Korean sentences (chapter 05's cut table uses the same)."
    words = ('한국어 문장 압축 파일 끝 줄 문서 자료 기록 바다 산 강 도시 마을 사람 시간 오늘 내일 학교 책 노래 '
             '바람 구름 하늘 길 나무 꽃 봄 여름 가을 겨울 아침 저녁 음식 시장 기차 버스 사진 편지 친구').split()
    rng = random.Random(0)
    rows = [json.dumps({'text': ' '.join(rng.choices(words, k=12)) + '.'}, ensure_ascii=False) for i in range(3000)]
    return ('\n'.join(rows) + '\n').encode()


def test_archives_cut_at_every_byte(tmp_path):
    "Each compressed format cut at every byte: exactly the lines that decoded whole, and one problem for the file."
    jsonl, packers, cuts = compressible_jsonl(), PACKERS, tmp_path
    small = jsonl[:jsonl.index(b'\n', 3000) + 1]  # the first rows, a few kB: cut at every byte of its archive
    for suffix, pack in packers.items():
        packed = pack(small)
        for cut in range(1, len(packed)):
            path = cuts / f'every.jsonl{suffix}'
            path.write_bytes(packed[:cut])
            report = Report()
            docs = [d.text for d in read_jsonl(path, report=report)]
            prefix = DECODERS[suffix]().decompress(packed[:cut])
            assert docs == [json.loads(l)['text'] for l in prefix.split(b'\n')[:-1]], (suffix, cut)
            assert len(report.problems) == 1, (suffix, cut, report.problems)


def test_wikitext_constructs():
    constructs = {  # wikitext: what is left of it
        "__TOC__ __NOTOC__ __FORCETOC__ __NOEDITSECTION__ __목차__ __목차숨김__ __새문단단추__ 본문이다.": '본문이다.',
        "{{DISPLAYTITLE:한라산}}{{#if: {{{1|}}} | 예 | 아니오 }}{{PAGENAME}}본문이다.": '본문이다.',
        "본문<!-- 편집자 주석 -->이다.": '본문이다.',
        "본문이다.<ref>{{웹 인용|url=http://x|제목=t}}</ref><ref name=\"a\"/>\n<references />\n{{각주}}": '본문이다.',
        "{| class=\"wikitable\"\n|-\n! 항목 !! 값\n|-\n| 높이 || 1947\n|}\n본문이다.": '본문이다.',
        "[[파일:Halla.jpg|섬네일|[[백록담]] 사진]][[File:A.png|thumb|x]][[그림:B.png]]본문이다.": '본문이다.',
        "<gallery>\n파일:A.jpg|사진\n</gallery>\n본문이다.": '본문이다.',
        "식은 <math>h = 1947</math> 이다.\n<syntaxhighlight lang=\"python\">print(1)</syntaxhighlight>": '식은  이다.',
        "본문이다.\n[[분류:제주도의 산]]\n[[Category:Mountains]]": '본문이다.',
        "'''굵게''' ''기울임'' [[한라산|산]]과 [[백록담]], [http://example.com 외부 링크]": '굵게 기울임 산과 백록담, 외부 링크',
        "== 지질 ==\n* 목록\n# 번호\n; 정의 : 설명": '지질\n목록\n번호\n정의  설명',
    }
    expect_eq({w: strip_wikitext(w) for w in constructs}, constructs)


def test_wikipedia_page_without_a_revision(tmp_path):
    "A page without any revision is skipped as `no_revision` (it once inherited the previous page's text)."
    cuts = tmp_path
    xml = bz2.decompress((FIXTURES / 'kowiki-test-pages-articles.xml.bz2').read_bytes()).decode()
    head, *pages = re.split(r'(?=  <page>)', xml.removesuffix('</mediawiki>\n'))
    fourth = pages[0].replace('<title>한라산</title>', '<title>한라산 (사본)</title>')
    streams = [head, *pages[:3], fourth + ''.join(pages[3:]), '</mediawiki>\n']  # one bz2 stream each, as dumps do
    multistream = [bz2.compress(s.encode()) for s in streams]
    no_revision = pages[1].split('    <revision>')[0] + '  </page>\n'  # 경복궁's page, its revision removed
    (cuts / 'kowiki-norev-pages-articles.xml').write_text(head + pages[0] + no_revision + pages[2] + '</mediawiki>\n')
    report = Report()
    docs = list(read_wikipedia(cuts / 'kowiki-norev-pages-articles.xml', report=report))
    expect_eq([d.id for d in docs], ['한라산', '낙동강'])
    expect_eq(dict(report.dropped()), {'no_revision': 1})
    assert docs[0].text != docs[1].text


def test_namumark_constructs():
    namu_constructs = {  # one namumark construct each: what is left of it
        '[include(틀:대한민국의 도시, 도시=부산)]본문': '본문', '[youtube(abc123)][kakaotv(1)][nicovideo(sm9)]본문': '본문',
        '[age(2000-01-01)]세 [dday(2030-01-01)]일 [pagecount] [date] [datetime]': '세 일',
        '[목차][tableofcontents][각주][footnote][clearfix]본문': '본문', '본문[br]다음 줄': '본문\n다음 줄',
        '[anchor(위치)]본문': '본문', '[ruby(漢字,ruby=한자)]': '漢字', '[math(E=mc^2)]본문': '본문',
        '본문[* 각주 내용 [[링크]] 포함.]이다.': '본문이다.', '본문[*A 이름 붙은 각주]이다.': '본문이다.',
        '[[분류:부산광역시]][[파일:사진.jpg|width=100]][[:파일:사진.jpg]]본문': '본문',
        '[[대한민국]] [[동남권|남동쪽]] [[https://example.com|누리집]]': '대한민국 남동쪽 누리집',
        "'''굵게''' ''기울임'' __밑줄__ ^^위^^ ,,아래,,": '굵게 기울임 밑줄 위 아래', '본문~~취소~~ --취소--이다.': '본문 이다.',
        '{{{+1 큰 글씨}}} {{{-2 작은 글씨}}} {{{#red 빨강}}} {{{#!wiki style="color:red"\n상자 안}}}': '큰 글씨 작은 글씨 빨강 상자 안',
        '{{{#!html <b>x</b>}}}{{{#!folding 펼치기\n숨은 글}}}{{{#!syntax python\nprint(1)}}}본문': '본문',
        '## 주석\n본문': '본문', '본문\n----\n다음': '본문\n다음',
        '|| 인구 || 330만 ||\n본문': '본문', '== 개요 ==\n===# 접힌 제목 #===': '개요\n접힌 제목',
        '> 인용문\n>> 겹 인용': '인용문\n겹 인용', ' * 목록\n 1. 번호\n a.#3 글자': '목록\n번호\n글자',
    }
    expect_eq({m: strip_namumark(m) for m in namu_constructs}, namu_constructs)


def test_namuwiki_shapes_and_cuts(tmp_path):
    "Re-export shapes of the dump read alike; a gzipped dump cut at every byte gives whole records only."
    cuts = tmp_path
    namu_dump = tmp_path / 'namuwiki-variants.json'
    namu_dump.write_text(json.dumps([
        {'namespace': '0', 'title': '가', 'text': "'''가'''는 첫 문서이다.", 'contributors': ['namubot', 'R:someone']},
        {'namespace': 0, 'title': '나', 'text': '나는 둘째 문서이다.', 'contributors': 'namubot,211.0.0.1'},  # re-export shapes
        {'namespace': '', 'title': '다', 'text': '다는 셋째 문서이다.', 'contributors': ''},
        {'namespace': '1', 'title': '틀:상자', 'text': '틀 문서', 'contributors': []},
        {'namespace': '0', 'title': '라', 'text': '#redirect 가', 'contributors': []},
        {'namespace': '0', 'title': '마', 'text': '[include(틀:상자)]\n[목차]', 'contributors': []},
    ], ensure_ascii=False))
    report = Report()
    expect_eq([d.text for d in read_namuwiki(namu_dump, report=report)], ['가는 첫 문서이다.', '나는 둘째 문서이다.', '다는 셋째 문서이다.'])
    expect_eq(dict(report.dropped()), {'namespace': 1, 'redirect': 1, 'macro_only': 1})
    namu_cut = cuts / 'namuwiki-cut.json.gz'
    namu_packed = gzip.compress((FIXTURES / 'namuwiki-test.json').read_bytes())
    titles = []
    for cut in range(1, len(namu_packed)):  # a streamed JSON array: the records before the cut come out whole
        namu_cut.write_bytes(namu_packed[:cut])
        report = Report()
        titles.append(len([d.id for d in read_namuwiki(namu_cut, report=report)]))
        assert report.problems, cut
    expect_eq(sorted(set(titles)), [0, 1, 2])  # nothing, then 한글, then 백두대간 too: never a partial record


def test_modu_and_aihub_schemas(tmp_path):
    "One file per schema variant of chapter 05a_dumps' table, each with a BOM; an unknown schema is one problem."
    schemas = tmp_path
    turns = [{'participantID': 'P01', 'utterance': '오늘 점심 뭐 먹었어?'}, {'participantID': 'P02', 'utterance': '김치찌개 먹었지 ㅋㅋ'}]
    samples = {  # file: (JSON, expected texts), one per schema variant in the table above
        'aihub-summary.json': ({'documents': [{'id': 'D1', 'text': [[{'index': 0, 'sentence': '첫 문장이다.'},
                                                                   {'index': 1, 'sentence': '둘째 문장이다.'}],
                                                                  [{'index': 2, 'sentence': '새 문단이다.'}]]}]},
                               ['첫 문장이다. 둘째 문장이다.\n새 문단이다.']),
        'aihub-summary-str.json': ({'documents': [{'id': 'D2', 'text': '본문이 한 문자열이다.'}]}, ['본문이 한 문자열이다.']),
        'aihub-dialogue.json': ({'data': [{'header': {'dialogueInfo': {'dialogueID': 'X1'}}, 'body': {'dialogue': turns}}]},
                                ['오늘 점심 뭐 먹었어?\n김치찌개 먹었지 ㅋㅋ']),
        'aihub-sns.json': ({'numberOfItems': 1, 'data': [{'header': [{'dialogueID': 'S1'}],
                                                          'body': [turns[:1], [turns[1]]]}]},
                           ['오늘 점심 뭐 먹었어?\n김치찌개 먹었지 ㅋㅋ']),  # a header list and nested turn lists
        'aihub-list.json': ([{'header': {}, 'body': turns}, {'id': 'D3', 'text': [{'sentence': '목록 속 문서다.'}]}],
                            ['오늘 점심 뭐 먹었어?\n김치찌개 먹었지 ㅋㅋ', '목록 속 문서다.']),
        'modu-messenger-MDRW.json': ({'document': [{'id': 'M1', 'utterance': [{'form': '어디야?', 'speaker_id': '1'},
                                                                            {'original_form': '지금 가는 중~'}]}]},
                                     ['어디야?\n지금 가는 중~']),
        'modu-annotated-NXMP.json': ({'document': [{'id': 'A1', 'sentence': [{'form': '형태 분석 말뭉치의 문장.'}]}]},
                                     ['형태 분석 말뭉치의 문장.']),
    }
    for name, (data, texts) in samples.items():
        (schemas / name).write_bytes(b'\xef\xbb\xbf' + json.dumps(data, ensure_ascii=False).encode())  # with a BOM
        report = Report()
        docs = list((read_modu if name.startswith('modu') else read_aihub)(schemas / name, report=report))
        expect_eq(([d.text for d in docs], report.problems), (texts, []))
    (schemas / 'aihub-unknown.json').write_text('{"info": {"version": 2}, "annotations": []}')
    report = Report()
    expect_eq(list(read_aihub(schemas / 'aihub-unknown.json', report=report)), [])
    expect_eq(report.problems[0][2], "not a known AI Hub schema: no 'documents' or 'data' list and not a list of records "
                                   "(top-level keys ['annotations', 'info'])")


def read_all(name, **kw):
    "Documents and report of one fixture, read by the reader `detect_format` picks."
    path, report = FIXTURES / name, Report()
    return list(READERS[detect_format(path)](path, report=report, **kw)), report


def test_every_fixture_reads_as_described():
    "Each fixture's documents and drops by reason, as FORMATS.md describes it; exactly the cut files have a problem."
    expected = {  # fixture: (documents, {drop reason: count}), as FORMATS.md describes each file
        'kowiki-test-pages-articles.xml.bz2': (3, {'redirect': 1, 'namespace': 2}),
        'kowiki-truncated-pages-articles.xml.bz2': (2, {}),
        'kowiki-truncated-archive.xml.bz2': (0, {}),
        'namuwiki-test.json': (2, {'redirect': 1, 'namespace': 1}),
        'namuwiki-malformed.json': (3, {'missing_text': 2}),
        'modu-written-NWRW.json': (2, {}), 'modu-spoken-SDRW.json': (1, {}),
        'aihub-summary-train_original.json': (2, {}), 'aihub-dialogue.json': (2, {}),
        'cc-test.warc.wet.gz': (3, {'language': 2}),
        'cc-truncated.warc.wet.gz': (3, {'language': 1, 'truncated': 1}),
        'docs.jsonl': (2, {'malformed_json': 1, 'missing_text': 2}),
        'docs.jsonl.gz': (2, {'malformed_json': 1, 'missing_text': 2}),
        'docs.jsonl.bz2': (2, {'malformed_json': 1, 'missing_text': 2}),
        'docs.jsonl.zst': (2, {'malformed_json': 1, 'missing_text': 2}),
        'plain-utf8.txt': (7, {}), 'plain-utf8-bom.txt': (7, {}), 'plain-utf16.txt': (7, {}),
        'plain-cp949.txt': (7, {}), 'plain-euckr.txt': (7, {}), 'plain-mojibake.txt': (8, {}),
        'plain-blank-separated.txt': (4, {}), 'plain-bad-bytes.txt': (6, {}),
    }
    for name, (n_docs, drops) in expected.items():
        docs, report = read_all(name)
        expect_eq((name, len(docs), dict(report.dropped())), (name, n_docs, drops))
        expect_eq(bool(report.problems), 'truncated' in name)  # exactly the cut files report a problem
    expect_eq(len(read_all('docs-content.jsonl', text_field='content')[0]), 3)


def test_fixture_contents():
    "Every encoding decodes to the same sentences, mojibake comes out repaired, the wiki markup is gone."
    utf8 = [d.text for d in read_all('plain-utf8.txt')[0]]
    for name in ('plain-utf8-bom.txt', 'plain-utf16.txt'): expect_eq([d.text for d in read_all(name)[0]], utf8)
    assert any('똠' in d.text or '햏' in d.text for d in read_all('plain-cp949.txt')[0])
    mojibake = [normalize_text(d.text) for d in read_all('plain-mojibake.txt')[0]]
    assert all(hangul_share(t) > 0.9 for t in mojibake), mojibake
    wiki = read_all('kowiki-test-pages-articles.xml.bz2')[0]
    expect_eq([d.id for d in wiki], ['한라산', '경복궁', '낙동강'])
    assert not any(re.search(r"\{\{|\[\[|<ref|'''|\{\|", d.text) for d in wiki)
    namu = read_all('namuwiki-test.json')[0]
    assert not any(re.search(r"\[\[|\{\{\{|'''|\[\*|\|\|", d.text) for d in namu)


def test_fixtures_folder_through_prepare(tmp_path):
    "One report per source and reason, the Common Crawl page's personal data masked; notes are problems, not skipped."
    out = tmp_path
    inputs = [p for p in FIXTURES.iterdir() if p.name not in ('docs-content.jsonl', 'kowiki-truncated-archive.xml.bz2')]
    report = prepare(inputs, out, workers=0, valid_fraction=0.2, progress=False)
    table = report.table()
    # both WET files carry the page with personal data; the second copy is then an exact duplicate
    expect_eq(table.loc['commoncrawl', ['note:pii_phone', 'note:pii_email', 'note:pii_rrn']].tolist(), [2, 2, 2])
    expect_eq(table.loc['commoncrawl', 'drop:exact_duplicate'], 2)  # the two Korean pages both files share
    text_out = (out / 'train.txt').read_text() + (out / 'valid.txt').read_text()
    assert '010-1234-5678' not in text_out and '[전화번호]' in text_out
    expect_eq(json.loads((out / 'report.json').read_text())['sources']['wikipedia']['drop:redirect'], 1)
    expect_eq(sorted(Path(f).name for s, f, m, p in report.problems if s == 'unknown'), ['FORMATS.md', 'make_fixtures.py'])
    expect_eq(table.loc['total', 'read'], table.loc['total', 'kept'] + sum(table.loc['total', c] for c in table if c.startswith('drop:')))


def test_a_folder_as_users_have_them(tmp_path):
    "The good files prepared; an empty file, a PDF, a settings file, cut and fake archives each a problem with its reason."
    mixed, mixed_out = tmp_path / 'in', tmp_path / 'out'
    (tmp_path / 'in').mkdir()
    for fixture in FIXTURES.iterdir(): shutil.copy(fixture, mixed / fixture.name)
    (mixed / 'empty.txt').write_bytes(b'')
    (mixed / 'scan.pdf').write_bytes(b'%PDF-1.4 not a corpus')
    (mixed / 'settings.json').write_text('{"theme": "dark", "fontSize": 14}')
    (mixed / 'cut-modu.json').write_text('{"document": [{"id": "X", "paragraph": [{"form": "끊긴 문')
    (mixed / 'fake.txt.gz').write_bytes(b'plain bytes under a .gz name')
    jsonl = compressible_jsonl()
    (mixed / 'cut.jsonl.gz').write_bytes(gzip.compress(jsonl)[:2000])
    report = prepare([mixed], mixed_out, workers=0, progress=False)
    broken = ['cut-modu.json', 'cut.jsonl.gz', 'empty.txt', 'fake.txt.gz', 'scan.pdf', 'settings.json']
    damaged = ['cc-truncated.warc.wet.gz', 'kowiki-truncated-archive.xml.bz2', 'kowiki-truncated-pages-articles.xml.bz2']
    not_corpus = ['FORMATS.md', 'docs-content.jsonl', 'make_fixtures.py']  # notes, and JSONL without a `text` field
    expect_eq([Path(f).name for f in report.problem_files()], sorted(broken + damaged + not_corpus))
    assert all(report.counts[s]['kept_docs'] for s in ('wikipedia', 'namuwiki', 'modu', 'aihub', 'commoncrawl', 'docs'))
    expect_eq(report.counts['cut']['kept_docs'], zlib.decompressobj(31).decompress(gzip.compress(jsonl)[:2000]).count(b'\n'))
    saved = json.loads((mixed_out / 'report.json').read_text())
    expect_eq(saved['files_with_problems'], 12)
    script = Path(sys.executable).with_name('kollm_prepare')  # the console script, as a user runs it
    cli = subprocess.run([str(script), str(mixed), '--out_dir', str(mixed_out), '--workers', '0', '--quiet'],
                         capture_output=True, text=True)
    expect_eq(cli.returncode, 12)  # the exit status is the number of files with problems
    assert '12 file(s) had problems' in cli.stdout, cli.stdout + cli.stderr
