"""The test run itself: it stops up front, with one line saying what to do, when there is no scratch disk for it."""
import os
import subprocess
import sys
from collections import namedtuple

import conftest
from conftest import REPO, free_disk_problem

Usage = namedtuple('Usage', 'total used free')


def test_enough_scratch_disk_is_no_problem(tmp_path):
    assert free_disk_problem(str(tmp_path), need_mb=1) is None


def test_short_scratch_disk_is_one_line_that_says_what_to_do(monkeypatch):
    monkeypatch.setattr(conftest.shutil, 'disk_usage', lambda path: Usage(10 * 2 ** 30, 10 * 2 ** 30, 300 * 2 ** 20))
    problem = free_disk_problem('/scratch', need_mb=400)
    assert problem.startswith('only 300 MB free on the disk of /scratch; the tests need about 400 MB')
    assert 'TMPDIR' in problem and '\n' not in problem


def test_pytest_stops_before_any_test_when_scratch_disk_is_short(tmp_path):
    # a session whose scratch disk would need more than any disk has: exit status 1 and the line, no test run
    out = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '--basetemp',
                          str(tmp_path / 'base'), '-o', 'addopts=', os.path.join(REPO, 'tests', 'test_suite_setup.py'),
                          '-k', 'enough_scratch'], env={**os.environ, 'DYNAMIXER_TEST_MIN_FREE_MB': str(2 ** 40)},
                         cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 1, out.stdout + out.stderr
    assert 'the tests need about 1099511627776 MB of scratch space' in out.stdout + out.stderr
    assert 'passed' not in out.stdout
