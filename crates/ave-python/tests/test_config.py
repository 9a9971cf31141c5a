"""ave.config, ave.profile, ave.persona (spec/ave-tests.md, config t01-t07)."""

import os

import pytest

import ave.config
import ave.persona
from ave.profile import Profile

ORDER = ['broker.json', 'usbrel64.json', 'authkeys.json', 'jenkins.json',
         'workspace.json', 'gerrit.json', 'panotti.json', 'handset.json']


def test_t01_create_default(tmp_path):
    created, skipped = ave.config.create_default(str(tmp_path))
    base = os.path.join(str(tmp_path), '.ave', 'config')
    assert created == [os.path.join(base, name) for name in ORDER]
    assert skipped == []


def test_t02_existing_files_are_skipped(tmp_path):
    base = tmp_path / '.ave' / 'config'
    base.mkdir(parents=True)
    (base / 'broker.json').write_text('')
    (base / 'workspace.json').write_text('')
    created, skipped = ave.config.create_default(str(tmp_path))
    assert skipped == [str(base / 'broker.json'), str(base / 'workspace.json')]
    assert created == [str(base / n) for n in ORDER if n not in ('broker.json',
                                                               'workspace.json')]


def test_t03_authkeys(tmp_path):
    ave.config.create_default(str(tmp_path))
    keys = ave.config.load_authkeys(str(tmp_path))
    assert sorted(keys) == ['admin', 'share']
    assert all(len(v) == 10 and v.isdigit() for v in keys.values())


@pytest.mark.parametrize('content,text', [
    ('["admin", "share"]', 'contents is not a dictionary'),
    ('{"admin":3}', 'value of "admin" is not a string'),
    ('', 'not valid JSON encoding'),
])
def test_t04_t06_bad_authkeys(tmp_path, content, text):
    base = tmp_path / '.ave' / 'config'
    base.mkdir(parents=True)
    (base / 'authkeys.json').write_text(content)
    with pytest.raises(Exception, match=text):
        ave.config.load_authkeys(str(tmp_path))


def test_t07_missing_file_says_how_to_bootstrap(tmp_path):
    (tmp_path / '.ave' / 'config').mkdir(parents=True)
    with pytest.raises(Exception, match='no such configuration file'):
        ave.config.load_authkeys(str(tmp_path))


def test_create_etc_and_load(tmp_path):
    import pwd
    me = pwd.getpwuid(os.getuid()).pw_name
    path = tmp_path / 'user'
    assert ave.config.create_etc(str(path), me) == me
    loaded = ave.config.load(str(path))
    assert loaded['name'] == me and loaded['uid'] == os.getuid()


def test_become_current_user_changes_nothing():
    import pwd
    entry = pwd.getpwuid(os.geteuid())
    assert ave.persona.become_user(entry.pw_name) == entry.pw_dir


def test_profile():
    p = Profile({'type': 'handset', 'serial': '1', 'n': 1})
    assert p.match({'type': 'handset'}) and p.match({}) and p.match({'n': 1.0})
    assert not p.match({'serial': '2'})
    with pytest.raises(Exception, match='must implement __hash__'):
        hash(p)
    with pytest.raises(Exception, match='must implement minimize'):
        p.minimize()
