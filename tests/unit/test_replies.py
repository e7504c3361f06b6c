from portal.domain.replies import CannedReply, suggest

REPLIES = [
    CannedReply(
        1,
        "Wrong item: apology and reshipment",
        "en",
        "Sorry, we sent the wrong item...",
        frozenset({"wrong_item"}),
        ("wrong", "different"),
    ),
    CannedReply(
        2, "发错商品：致歉并补发", "zh_Hans", "很抱歉发错了商品……", frozenset({"wrong_item"}), ("发错", "不一样")
    ),
    CannedReply(
        3, "Damaged in transit", "en", "Sorry it arrived damaged...", frozenset({"damaged"}), ("broken", "crushed")
    ),
    CannedReply(4, "Sizing help", "en", "Here is our size chart...", frozenset({"size_fit"}), ("small", "large")),
]


def test_reason_then_keywords_rank():
    result = suggest(REPLIES, ["wrong_item"], ["They sent a different colour, wrong one"], "en")
    assert [s.reply.id for s in result] == [1]
    assert result[0].score == 4 and "reason wrong_item" in result[0].why


def test_keywords_alone_can_suggest():
    result = suggest(REPLIES, ["changed_mind"], ["the box was crushed"], "en")
    assert [s.reply.id for s in result] == [3]


def test_shoppers_language_first_then_english():
    assert [s.reply.id for s in suggest(REPLIES, ["wrong_item"], ["发错了"], "zh_Hans")] == [2]
    assert [s.reply.id for s in suggest(REPLIES[2:], ["damaged"], [], "zh_Hans")] == [
        3
    ]  # no Chinese reply exists: English


def test_nothing_matches():
    assert suggest(REPLIES, ["late_delivery"], ["fine"], "en") == []


def test_limit_and_ties_in_admin_order():
    many = [CannedReply(i, f"r{i}", "en", "b", frozenset({"size_fit"})) for i in (9, 5, 7, 6)]
    assert [s.reply.id for s in suggest(many, ["size_fit"], [], "en", limit=3)] == [5, 6, 7]
