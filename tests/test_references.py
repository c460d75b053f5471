"""What a typed model name is: a folder path, or a Hub repo id checked by huggingface_hub's rules."""

import pytest

from gpt2tune.references import is_repo_id, looks_like_path, validate_repo_id


@pytest.mark.parametrize("text, expected", [
    ("gpt2", True), ("user/name", True), ("Org-1/gpt2_faq.v2", True),
    ("", False), ("a/b/c", False), ("user/..", False), ("a--b/c", False), ("user/name.git", False),
    ("-user/name", False), ("us er/name", False), ("x" * 97, False),
])
def test_repo_ids_follow_the_hub(text, expected):
    assert is_repo_id(text) is expected


def test_pushing_needs_a_namespace():
    assert validate_repo_id(" user/name ") == "user/name"
    with pytest.raises(ValueError, match="repo id 'gpt2' is not of the form user/name"):
        validate_repo_id("gpt2")


@pytest.mark.parametrize("text, expected", [
    ("/models/gpt2", True), ("./run", True), ("~/run", True), ("a/b/c", True), ("a\\b", True),
    ("gpt2", False), ("user/name", False),
])
def test_looks_like_path(text, expected):
    assert looks_like_path(text) is expected
