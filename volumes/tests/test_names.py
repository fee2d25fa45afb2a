"""Look-alike names: invisible characters are refused everywhere a name is given, names are
NFC, and dot or separator look-alikes never become path components."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from urllib.parse import quote

import pytest

from volumes.models import Volume
from volumes.tests.conftest import assert_error

pytestmark = pytest.mark.django_db

# One or more characters of each refused Unicode category.
REFUSED = {
    "Cc escape": "\x1b",
    "Cc delete": "\x7f",
    "Cc C1 next line": "\x85",
    "Cf right-to-left override": "\u202e",
    "Cf zero-width space": "\u200b",
    "Cf zero-width joiner": "\u200d",
    "Cf byte order mark": "\ufeff",
    "Cf soft hyphen": "\u00ad",
    "Cf left-to-right isolate": "\u2066",
    "Zl line separator": "\u2028",
    "Zp paragraph separator": "\u2029",
}
NFD_NAME = "cafe\u0301.txt"
NFC_NAME = unicodedata.normalize("NFC", NFD_NAME)
# Names that Unicode compatibility normalisation (NFKC) turns into '.', '..' or a separator.
DOT_AND_SEPARATOR_LOOK_ALIKES = [
    "\uff0e\uff0e/etc/passwd",  # full-width '..'
    "a/\uff0e/b.txt",  # full-width '.'
    "\u2025",  # two dot leader
    "docs/\u2024",  # one dot leader
    "\ufe52\ufe52",  # small full stops
    "a\uff0fb.txt",  # full-width solidus
    "a\uff3cb.txt",  # full-width reverse solidus
]


@pytest.fixture
def volume(create_volume):
    volume = create_volume("names-1")
    return volume


def url(volume, path: str = "") -> str:
    return f"/api/v1/volumes/{volume['name']}/files/{quote(path, safe='/')}"


def put(client, volume, path: str, content: bytes):
    return client.put(url(volume, path), content, content_type="application/octet-stream")


def on_disk(volume) -> list[str]:
    return sorted(str(path.relative_to(volume["path"])) for path in Path(volume["path"]).rglob("*"))


def refused_everywhere(admin, volume, path: str) -> list[dict]:
    """The path is refused by upload, download, listing (both forms) and delete; the bodies."""
    bodies = [
        assert_error(put(admin, volume, path, b"x"), 400, "invalid_path"),
        assert_error(admin.get(url(volume, path)), 400, "invalid_path"),
        assert_error(admin.get(url(volume, path + "/")), 400, "invalid_path"),
        assert_error(admin.get(url(volume), {"path": path}), 400, "invalid_path"),
        assert_error(admin.delete(url(volume, path)), 400, "invalid_path"),
        assert_error(admin.delete(url(volume, path), QUERY_STRING="recursive=true"), 400, "invalid_path"),
    ]
    return bodies


@pytest.mark.parametrize("character", REFUSED.values(), ids=REFUSED.keys())
def test_control_format_and_separator_characters_are_refused_by_every_file_call(admin, volume, character):
    assert put(admin, volume, "report.txt", b"real").status_code == 201
    assert put(admin, volume, "docs/readme.md", b"real").status_code == 201
    before = on_disk(volume)
    for path in (f"report{character}.txt", f"docs{character}/readme.md", f"{character}", f"docs/{character}"):
        for body in refused_everywhere(admin, volume, path):
            assert body["detail"]["character"] == f"U+{ord(character):04X}"
            # The answer names the character and never carries it raw (logs, terminals).
            assert f"U+{ord(character):04X}" in body["message"]
            assert character not in body["message"] and character not in body["detail"]["path"]
    assert on_disk(volume) == before
    assert Path(volume["path"], "report.txt").read_bytes() == b"real"


def test_the_error_points_at_the_character():
    from volumes.errors import InvalidPath
    from volumes.validation import clean_file_path

    with pytest.raises(InvalidPath) as raised:
        clean_file_path("invoice\u202etxt.exe")
    assert raised.value.detail == {"path": "invoice\\u202etxt.exe", "character": "U+202E", "position": 7}
    assert "RIGHT-TO-LEFT OVERRIDE" in raised.value.message


def test_an_nfd_name_and_its_nfc_form_are_the_same_file(admin, volume):
    assert NFD_NAME != NFC_NAME
    created = put(admin, volume, NFD_NAME, b"first")
    assert created.status_code == 201
    assert created.json()["path"] == NFC_NAME
    assert os.listdir(volume["path"]) == [NFC_NAME]  # stored in NFC
    assert put(admin, volume, NFC_NAME, b"second!").status_code == 200  # the same file, replaced
    assert os.listdir(volume["path"]) == [NFC_NAME]
    download = admin.get(url(volume, NFD_NAME))
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"second!"
    assert [entry["name"] for entry in admin.get(url(volume)).json()["results"]] == [NFC_NAME]
    assert Volume.objects.get(pk=volume["id"]).used_bytes == len(b"second!")
    assert admin.delete(url(volume, NFD_NAME)).status_code == 204
    assert_error(admin.get(url(volume, NFC_NAME)), 404, "file_not_found")
    assert Volume.objects.get(pk=volume["id"]).used_bytes == 0


def test_nfd_and_nfc_directories_are_the_same_directory(admin, volume):
    nfd_directory, nfc_directory = "re\u0301sume\u0301", "r\u00e9sum\u00e9"
    assert put(admin, volume, f"{nfd_directory}/one.txt", b"1").status_code == 201
    assert put(admin, volume, f"{nfc_directory}/two.txt", b"2").status_code == 201
    assert os.listdir(volume["path"]) == [nfc_directory]
    for directory in (nfd_directory, nfc_directory):
        listing = admin.get(url(volume), {"path": directory}).json()
        assert [entry["name"] for entry in listing["results"]] == ["one.txt", "two.txt"]
    assert admin.delete(url(volume, nfd_directory), QUERY_STRING="recursive=true").status_code == 204
    assert on_disk(volume) == []


def test_a_name_stored_in_another_form_is_reached_through_its_nfc_form(admin, volume):
    # Written by a host tool, or by an upload before names were normalised.
    stored_directory, stored_file = "re\u0301pertoire", "nai\u0308ve.txt"
    Path(volume["path"], stored_directory).mkdir()
    Path(volume["path"], stored_directory, stored_file).write_bytes(b"old")
    Volume.objects.filter(pk=volume["id"]).update(used_bytes=3)
    nfc_path = unicodedata.normalize("NFC", f"{stored_directory}/{stored_file}")
    download = admin.get(url(volume, nfc_path))
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"old"
    replaced = put(admin, volume, nfc_path, b"newer")
    assert replaced.status_code == 200  # the stored file was replaced, no twin was created
    assert on_disk(volume) == [stored_directory, f"{stored_directory}/{stored_file}"]
    assert Path(volume["path"], stored_directory, stored_file).read_bytes() == b"newer"
    listing = admin.get(url(volume), {"path": unicodedata.normalize("NFC", stored_directory)})
    assert listing.status_code == 200 and listing.json()["count"] == 1
    assert admin.delete(url(volume, nfc_path)).status_code == 204
    assert on_disk(volume) == [stored_directory]
    assert Volume.objects.get(pk=volume["id"]).used_bytes == 0


@pytest.mark.parametrize("path", DOT_AND_SEPARATOR_LOOK_ALIKES)
def test_dot_and_separator_look_alikes_are_refused_by_every_file_call(admin, volume, path):
    for body in refused_everywhere(admin, volume, path):
        assert "look" in body["message"]
    assert on_disk(volume) == []


def test_other_full_width_and_non_latin_names_are_accepted(admin, volume):
    for name in ("report\uff0epdf", "\uff46\uff55\uff4c\uff4c.txt", "\u6771\u4eac/\u0434\u0430\u043d\u043d\u044b\u0435",
                 "\uff0e\uff0e\uff0e", "emoji-\U0001f4be.bin"):
        assert put(admin, volume, name, b"ok").status_code == 201, name
        download = admin.get(url(volume, name))
        assert download.status_code == 200 and b"".join(download.streaming_content) == b"ok"


# --- volume fields -------------------------------------------------------------------------
def post_volume(admin, **fields):
    return admin.post("/api/v1/volumes", {"name": "named", "size_gb": 1, **fields}, format="json")


@pytest.mark.parametrize("name", ["db-1\n", "d\u202eb", "d\u200bb", "db\ufeff", "db\uff0e1", "\uff44\uff42"])
def test_volume_names_with_invisible_or_look_alike_characters_are_400(admin, name):
    body = assert_error(post_volume(admin, name=name), 400, "validation_error")
    assert "name" in body["detail"]
    assert not Volume.objects.exists()


def test_a_node_or_label_key_with_a_trailing_newline_is_400(admin):
    assert "node" in assert_error(post_volume(admin, node="node-1\n"), 400, "validation_error")["detail"]
    assert "labels" in assert_error(post_volume(admin, labels={"tier\n": "gold"}), 400, "validation_error")["detail"]


@pytest.mark.parametrize("character", REFUSED.values(), ids=REFUSED.keys())
def test_label_values_with_control_format_or_separator_characters_are_400(admin, create_volume, character):
    body = assert_error(post_volume(admin, labels={"owner": f"ops{character}team"}), 400, "validation_error")
    assert f"U+{ord(character):04X}" in body["detail"]["labels"][0]
    create_volume("labelled")
    assert_error(admin.patch("/api/v1/volumes/labelled", {"labels": {"owner": f"{character}x"}}, format="json"),
                 400, "validation_error")
    assert Volume.objects.get(name="labelled").labels == {}


def test_a_label_value_with_a_lone_surrogate_is_400_not_a_database_error(admin):
    body = b'{"name": "named", "size_gb": 1, "labels": {"owner": "ops\\ud800"}}'
    response = admin.post("/api/v1/volumes", body, content_type="application/json")
    assert "U+D800 surrogate" in assert_error(response, 400, "validation_error")["detail"]["labels"][0]


def test_label_values_may_hold_other_unicode(admin):
    labels = {"owner": "Zo\u00eb \u6771\u4eac \uff46\uff55\uff4c\uff4c"}
    response = post_volume(admin, labels=labels)
    assert response.status_code == 201, response.content
    assert response.json()["labels"] == labels
