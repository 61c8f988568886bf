"""What models read: the shared input format and the answer/reference overlap tokens, against hand counts."""

from raykd.inputs import content_words, model_inputs, overlap_tokens


def test_content_words_drop_stop_words_short_words_and_plurals():
    assert content_words("The plants need sunlight, and cells divide!") == {"plant", "need", "sunlight", "cell",
                                                                             "divide"}
    assert content_words(None) == set()


def test_overlap_tokens_hand_counted():
    reference = "Plants use sunlight to make food\nLight energy becomes chemical energy"
    # Answer words {plant, sunlight, food, water}. Reference 1 {plant, use, sunlight, make, food}: recall 3/5 = 0.6
    # (bucket 3); reference 2 {light, energy, becomes, chemical}: 0. Precision 3/4 = 0.75 (bucket 3).
    # Question {plant, need}: qcopy 1/4 = 0.25 (bucket 1).
    got = overlap_tokens("plants sunlight food water", "What do plants need?", reference)
    assert got == "xxrecall3 xxprecision3 xxqcopy1"
    assert overlap_tokens("", None, None) == "xxrecall0 xxprecision0 xxqcopy0"
    assert overlap_tokens("plant sunlight make food use", None, reference).startswith("xxrecall4 xxprecision4")


def test_model_inputs_formats():
    texts, questions, refs = ["it grows"], ["Why?"], ["It gets light"]
    assert model_inputs(texts, questions, refs) == ["it grows"]
    assert model_inputs(texts, questions, refs, include_question=True) == [
        "Question: Why?\nReference: It gets light\nAnswer: it grows"]
    assert model_inputs(texts, questions, refs, overlap=True) == ["xxrecall0 xxprecision0 xxqcopy0 it grows"]
    both = model_inputs(texts, questions, refs, include_question=True, overlap=True)[0]
    assert both.startswith("xxrecall0 xxprecision0 xxqcopy0 Question: Why?")
