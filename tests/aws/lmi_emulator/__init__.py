"""moto extended with the AWS Lambda Managed Instances API; see tests/aws/README.md."""
