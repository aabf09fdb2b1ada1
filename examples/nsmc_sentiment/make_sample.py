"""Write ``data/sample.tsv``: a small, synthetic movie-review set in the NSMC format.

The real Naver Sentiment Movie Corpus (``ratings_train.txt``, 150,000 reviews) is a
tab-separated file with a header ``id<TAB>document<TAB>label`` and label 1 (positive) or
0 (negative). This script composes about 400 reviews in the same format from pools of
Korean phrases, so the example trains and serves offline. It is deterministic (fixed
seed) and uses only the standard library:

    python examples/nsmc_sentiment/make_sample.py

Reviews mix praise and complaints about acting, story, directing, music and endings, with
the spacing, ㅋㅋ/ㅠㅠ, emoticons and scores typical of the real corpus. Some reviews argue
both ways ("연기는 좋았는데 스토리가...") and a few are lukewarm, so a bag-of-words model
learns real signal without scoring perfectly.
"""

from __future__ import annotations

import random
from pathlib import Path

SEED = 20150613
ROWS_PER_LABEL = 200
OUT = Path(__file__).with_name("data") / "sample.tsv"

OPENERS = [
    "",
    "",
    "",
    "어제 극장에서 봤는데",
    "친구랑 같이 봤는데",
    "주말에 가족이랑 봤어요.",
    "넷플릭스로 봤는데",
    "기대 안 하고 봤는데",
    "예고편 보고 봤는데",
    "원작 팬으로서 말하자면",
    "두 번째 보는 건데",
    "TV에서 해주길래 봤는데",
    "여자친구가 보자고 해서 봤는데",
    "시사회로 봤습니다.",
    "평점 보고 봤는데",
    "솔직히 말해서",
    "오랜만에 영화관 갔는데",
    "IPTV로 봤는데",
]

POSITIVE_ASPECTS = [
    "배우들 연기가 정말 미쳤다",
    "주연 배우 연기력이 대단하네요",
    "연기 진짜 잘한다",
    "아역 배우 연기에 눈물났어요",
    "스토리가 탄탄하고 반전이 대박",
    "스토리 전개가 빠르고 몰입감 최고",
    "지루할 틈이 없었다",
    "러닝타임이 짧게 느껴졌어요",
    "감독의 연출력이 돋보였다",
    "연출이 세련됐다",
    "영상미가 정말 아름다웠다",
    "화면이 너무 예뻐요",
    "OST가 귀에 계속 맴돈다",
    "음악이 장면이랑 잘 어울렸다",
    "결말이 여운이 많이 남네요",
    "마지막 장면에서 소름돋았음",
    "캐릭터들이 하나하나 매력있다",
    "대사 하나하나가 명대사",
    "액션씬이 시원시원하다",
    "웃기면서도 감동적이다",
    "가족이 다같이 보기 좋은 영화",
    "CG가 자연스럽고 훌륭하다",
    "긴장감이 끝까지 유지된다",
    "따뜻한 영화였어요",
]

NEGATIVE_ASPECTS = [
    "배우들 연기가 너무 어색하다",
    "발연기 때문에 몰입이 안됨",
    "주인공 연기가 너무 오글거림",
    "스토리 개연성이 하나도 없음",
    "스토리가 너무 뻔하다",
    "내용이 산으로 간다",
    "너무 지루해서 졸았다",
    "러닝타임이 너무 길다",
    "연출이 산만하다",
    "감독이 뭘 말하고 싶은지 모르겠다",
    "CG가 너무 조잡하다",
    "화면만 번지르르하고 내용은 없다",
    "음악만 시끄럽다",
    "OST도 별로",
    "결말이 너무 허무하다",
    "결말 보고 어이가 없었음",
    "캐릭터가 전부 답답하다",
    "대사가 유치하고 오글거린다",
    "액션씬도 어설프다",
    "웃기지도 않고 감동도 없다",
    "억지 신파에 짜증났다",
    "전개가 질질 끈다",
    "PPL이 너무 많다",
    "예고편이 전부였다",
]

POSITIVE_CLOSERS = [
    "정말 재밌게 잘봤습니다",
    "정말 재밌게 잘봤습니다",
    "강추합니다",
    "강추",
    "인생영화 등극",
    "또 보고 싶다",
    "10점 만점에 10점",
    "평점 10점 드립니다",
    "꼭 보세요",
    "최고의 영화",
    "올해 본 영화 중 최고",
    "돈이 하나도 안 아까웠다",
    "시간 가는 줄 몰랐네요",
    "여운이 오래 가네요",
    "완전 감동",
    "명작입니다",
    "재밌어요",
    "진짜 재밌다",
    "볼만해요",
    "추천합니다",
    "best movie",
    "후회 안 합니다",
]

NEGATIVE_CLOSERS = [
    "시간 아깝다",
    "시간 아깝다",
    "최악의 영화",
    "최악의 영화",
    "돈 아깝다",
    "비추",
    "1점도 아깝다",
    "평점 1점",
    "중간에 나왔어요",
    "보다가 잤음",
    "보지 마세요",
    "평점 알바 너무 많네요",
    "기대 이하",
    "내 돈 돌려줘",
    "다시는 안 본다",
    "재미없다",
    "노잼",
    "이게 영화냐",
    "쓰레기",
    "실망입니다",
    "worst",
    "이런 영화에 천만이라니",
]

# Concessions that praise or blame in passing before the review turns the other way:
# "연기는 좋았지만 스토리가 너무 뻔하다" is negative, though half of it is praise.
PRAISE_CONCESSIONS = [
    "배우들 연기는 좋았지만",
    "영상미는 좋은데",
    "음악은 좋았지만",
    "초반은 괜찮았는데",
    "소재는 참신했는데",
    "CG는 볼만했지만",
    "평점이 높아서 봤는데",
    "기대 많이 했는데",
    "재밌을 줄 알았는데",
]

BLAME_CONCESSIONS = [
    "초반엔 좀 지루했는데",
    "스토리는 뻔하지만",
    "CG는 좀 아쉽지만",
    "러닝타임이 길지만",
    "평점이 낮아서 걱정했는데",
    "결말이 좀 아쉽긴 한데",
    "연기가 살짝 어색하긴 했지만",
    "기대 안 했는데",
    "유치할 줄 알았는데",
]

# Reviews whose words point the other way: sarcasm, and praise in the words of fear.
SARCASTIC = [
    "감독님 천재인듯ㅋㅋㅋ 이렇게 만들기도 힘들겠다",
    "덕분에 잠 한번 푹 잘 잤습니다",
    "와 대단하다 대단해 돈을 이렇게 쓰다니",
    "배우들 얼굴 보는 재미로 버텼다",
    "10점 준 사람들 진짜 궁금하다",
    "반전이 없는 게 반전",
]

INTENSE = [
    "미쳤다 진짜 ㄷㄷ",
    "소름 돋아서 잠이 안 온다",
    "울다가 웃다가 난리남",
    "무서워서 죽는 줄 알았네 최고의 공포영화",
    "너무 슬퍼서 펑펑 울었다",
    "끝나고도 한참 못 일어났다",
]

# Lukewarm reviews: the same words end up under either label, as in the real corpus.
LUKEWARM = [
    "그냥 그랬음",
    "무난했어요",
    "평범한 영화",
    "볼만은 한데 두 번은 안 볼 듯",
    "킬링타임용",
    "나쁘진 않았다",
    "그럭저럭",
    "기대만큼은 아니었다",
    "생각보다 별로였는데 마지막은 좋았다",
]

# Share of each label flipped to the other, as raters of the real corpus sometimes slip.
LABEL_NOISE = 0.03

POSITIVE_TAILS = ["", "", "", "!", "!!", "~", "^^", "ㅋㅋ", "ㅋㅋㅋㅋ", "ㅠㅠ", ":)", "♥", "👍"]
NEGATIVE_TAILS = ["", "", "", ".", "...", "..;;", "ㅡㅡ", "ㅋㅋ", "ㅠㅠ", "-_-", "?", "ㅉㅉ"]


def squash(text: str, rng: random.Random) -> str:
    """Drop the spaces now and then, as many real reviews do."""
    return text.replace(" ", "") if rng.random() < 0.15 else text


def compose(label: int, rng: random.Random) -> str:
    """Compose one review with the given label (1 positive, 0 negative)."""
    positive = label == 1
    aspects = POSITIVE_ASPECTS if positive else NEGATIVE_ASPECTS
    closers = POSITIVE_CLOSERS if positive else NEGATIVE_CLOSERS
    tails = POSITIVE_TAILS if positive else NEGATIVE_TAILS
    roll = rng.random()
    if roll < 0.08:
        parts = [rng.choice(LUKEWARM)]
    elif roll < 0.14:
        parts = [rng.choice(INTENSE if positive else SARCASTIC)]
    elif roll < 0.38:
        concessions = BLAME_CONCESSIONS if positive else PRAISE_CONCESSIONS
        parts = [rng.choice(concessions), rng.choice(aspects)]
    elif roll < 0.52:
        parts = [rng.choice(closers)]
    else:
        parts = [rng.choice(OPENERS), *rng.sample(aspects, rng.choice([1, 1, 2]))]
    if rng.random() < 0.5:
        parts.append(rng.choice(closers))
    if rng.random() < 0.1:
        parts.append(f"{rng.choice([8, 9, 10]) if positive else rng.choice([1, 2, 3, 4])}점")
    words = [squash(p, rng) for p in parts if p]
    text = rng.choice([" ", " ", ", ", ". "]).join(dict.fromkeys(words))
    return text + rng.choice(tails)


def make_rows(rng: random.Random) -> list[tuple[int, str, int]]:
    """Return balanced, shuffled (id, document, label) rows with unique documents."""
    rows: list[tuple[str, int]] = []
    seen: set[str] = set()
    for label in (1, 0):
        count = 0
        while count < ROWS_PER_LABEL:
            text = compose(label, rng)
            if text not in seen:
                seen.add(text)
                rows.append((text, label))
                count += 1
    flips = round(LABEL_NOISE * ROWS_PER_LABEL)
    by_label = [[i for i, row in enumerate(rows) if row[1] == label] for label in (0, 1)]
    for index in rng.sample(by_label[0], flips) + rng.sample(by_label[1], flips):
        rows[index] = (rows[index][0], 1 - rows[index][1])
    rng.shuffle(rows)
    ids = rng.sample(range(100_000, 10_000_000), len(rows))
    return [(i, text, label) for i, (text, label) in zip(ids, rows, strict=True)]


def main() -> None:
    """Write the sample file next to this script."""
    rows = make_rows(random.Random(SEED))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    lines = ["id\tdocument\tlabel"] + [f"{i}\t{text}\t{label}" for i, text, label in rows]
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(rows)} reviews to {OUT}")


if __name__ == "__main__":
    main()
