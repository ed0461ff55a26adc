"""Generated files derived from the AWS model are current."""

from pathlib import Path

import gen_lambda_operations

TABLE = Path(__file__).parents[1] / "support" / "src" / "proxy" / "lambda_operations.rs"


def test_lambda_operation_table_matches_the_model():
    assert TABLE.read_text() == gen_lambda_operations.render(), (
        "regenerate: .venv-aws/bin/python tests/aws/gen_lambda_operations.py > " + str(TABLE)
    )
