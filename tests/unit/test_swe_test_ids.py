"""SWE-bench's test names -> runner labels, on names in the forms of published rows."""

from __future__ import annotations

import pytest

from harbor_env.datasets.swe_template import (
    SweTemplateConfig,
    label_of_test,
    resolve_template,
    runnable_test_command,
)
from harbor_env.datasets.swe_test_ids import label_of
from harbor_env.errors import SweRowError

UNITTEST_NAMES = {
    # Django 3.x rows (Python < 3.11): `method (module.Class)`.
    "test_ascii_validator (auth_tests.test_validators.UsernameValidatorsTests)": (
        "auth_tests.test_validators.UsernameValidatorsTests.test_ascii_validator"
    ),
    "test_or (expressions.tests.CombinableTests)": "expressions.tests.CombinableTests.test_or",
    # Django 5.x rows (Python 3.11+): the path names the method.
    "test_serialize_nested_class_method (migrations.test_writer.WriterTests.test_serialize_nested_class_method)": (
        "migrations.test_writer.WriterTests.test_serialize_nested_class_method"
    ),
    # ... and a test with a docstring: its first line, whatever it holds (dots, parentheses, one word).
    "Test comments at top of file. (migrations.test_writer.WriterTests.test_migration_file_header_comments)": (
        "migrations.test_writer.WriterTests.test_migration_file_header_comments"
    ),
    "django.db.models shouldn't be imported if unused. (migrations.test_writer.WriterTests.test_models_import_omitted)": (
        "migrations.test_writer.WriterTests.test_models_import_omitted"
    ),
    "Regression (admin_views.tests.AdminViewBasicTest.test_basic_add_GET)": (
        "admin_views.tests.AdminViewBasicTest.test_basic_add_GET"
    ),
    "Ticket #22943: Test serialization (of validators) (migrations.test_writer.WriterTests.test_serialize_class_based_validators)": (  # noqa: E501
        "migrations.test_writer.WriterTests.test_serialize_class_based_validators"
    ),
    # A subtest's description after the name.
    "test_choices (model_fields.tests.ChoicesTests.test_choices) (value=1)": "model_fields.tests.ChoicesTests.test_choices",
    # Plain dotted ids pass through.
    "expressions.tests.CombinableTests.test_or": "expressions.tests.CombinableTests.test_or",
    "  test_x (pkg.mod.TestY)\n": "pkg.mod.TestY.test_x",
    # Names that do not say which test: a docstring alone, a docstring with only the class.
    "Regression test for #10348: ChangeList.get_results() will properly count rows": None,
    "A docstring line (admin_changelist.tests.ChangeListTests)": None,
    "": None,
}

PYTEST_NAMES = {
    # sphinx, astropy, matplotlib, pytest, requests, scikit-learn: ids as written.
    "tests/test_ext_autodoc_automodule.py::test_empty_all": "tests/test_ext_autodoc_automodule.py::test_empty_all",
    "astropy/modeling/tests/test_separable.py::test_separable[compound_model6-result6]": (
        "astropy/modeling/tests/test_separable.py::test_separable[compound_model6-result6]"
    ),
    "lib/matplotlib/tests/test_axes.py::test_formatter_ticker[png]": (
        "lib/matplotlib/tests/test_axes.py::test_formatter_ticker[png]"
    ),
    "testing/test_mark.py::TestFunctional::test_keyword_added_for_session": (
        "testing/test_mark.py::TestFunctional::test_keyword_added_for_session"
    ),
    "test_requests.py::RequestsTestCase::test_BASICAUTH_TUPLE_HTTP_200_OK_GET": (
        "test_requests.py::RequestsTestCase::test_BASICAUTH_TUPLE_HTTP_200_OK_GET"
    ),
    # Parameters with spaces, brackets and a `name (dotted.path)` look-alike stay whole.
    "testing/python/approx.py::TestApprox::test_repr_nd_array[value5-approx([1.0 \u00b1 1.0e-06, 2.0 \u00b1 2.0e-06])]": (
        "testing/python/approx.py::TestApprox::test_repr_nd_array[value5-approx([1.0 \u00b1 1.0e-06, 2.0 \u00b1 2.0e-06])]"
    ),
    "tests/test_util.py::test_split[a b (c.d)]": "tests/test_util.py::test_split[a b (c.d)]",
    # Cut short at a space by a log parser: no runnable id.
    "sklearn/tests/test_x.py::test_repr[LogisticRegression(C=1,": None,
}


@pytest.mark.parametrize(("name", "label"), UNITTEST_NAMES.items())
def test_unittest_names(name: str, label: str | None) -> None:
    assert label_of(name, "unittest") == label


@pytest.mark.parametrize(("name", "label"), PYTEST_NAMES.items())
def test_pytest_names(name: str, label: str | None) -> None:
    assert label_of(name, "pytest") == label


def test_as_is_keeps_what_is_written() -> None:
    assert label_of("test_issue_24062", "as-is") == "test_issue_24062"  # sympy's bin/test names
    assert label_of("test_or (expressions.tests.CombinableTests)", "as-is") == (
        "test_or (expressions.tests.CombinableTests)"
    )
    assert label_of("  ", "as-is") is None


def test_c2bug_preset_speaks_django_of_every_python() -> None:
    template = resolve_template(SweTemplateConfig(preset="c2bug"))
    assert template.test_command.startswith("./tests/runtests.py") and template.workdir == "/testbed"
    labels = [label_of_test(name, template) for name in UNITTEST_NAMES]
    assert labels == list(UNITTEST_NAMES.values())
    assert resolve_template(SweTemplateConfig(preset="c2bug", workdir="/repo")).workdir == "/repo"
    with pytest.raises(SweRowError, match="unknown preset 'nope'"):
        resolve_template(SweTemplateConfig(preset="nope"))


def test_a_regex_of_the_data_sets_own_wins_over_the_style() -> None:
    template = SweTemplateConfig(
        test_id_style="pytest", test_id_regex=r"^(?P<file>\S+\.py) (?P<name>\w+)$", test_id_format="{file}::{name}"
    )
    assert label_of_test("tests/test_a.py test_b", template) == "tests/test_a.py::test_b"
    assert label_of_test("tests/test_a.py::test_c[x y]", template) == "tests/test_a.py::test_c[x y]"


def test_a_template_that_cannot_run_a_test_is_one_error_before_any_row() -> None:
    ok = {"test_command": "pytest {test}"}
    assert runnable_test_command(SweTemplateConfig(**ok)) == "pytest {test}"
    for bad, message in (
        ({}, r"test_command \(--test-command\): not set"),
        ({"test_command": "pytest"}, "has no {test} placeholder"),
        ({**ok, "test_id_regex": "(?P<a"}, "test_id_regex: missing >"),
        ({**ok, "test_id_regex": "(?P<a>.+)", "test_id_format": "{a}::{b}"}, r"must be set from .*\['a'\]"),
    ):
        with pytest.raises(SweRowError, match=message):
            runnable_test_command(SweTemplateConfig(**bad))
