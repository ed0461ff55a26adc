//! Naming an AWS request: which service (the SigV4 credential scope) and which operation
//! (Lambda: method + path against the model's request URIs; query services such as EC2: the
//! `Action` parameter; JSON services: the `X-Amz-Target` header).

use http::HeaderMap;
use http::request::Parts;

use super::lambda_operations::LAMBDA_OPERATIONS;

/// The service and operation a request calls; `"unknown"` where it cannot be told.
pub(crate) fn identify(parts: &Parts, body: &[u8]) -> (String, String) {
    let service = service_of(&parts.headers).unwrap_or_else(|| "unknown".to_owned());
    let query = parts.uri.query().unwrap_or("");
    let operation = if service == "lambda" {
        lambda_operation(parts.method.as_str(), parts.uri.path(), query).map(str::to_owned)
    } else if let Some(target) = header(&parts.headers, "x-amz-target") {
        target.rsplit('.').next().map(str::to_owned)
    } else {
        form_value(body, "Action").or_else(|| form_value(query.as_bytes(), "Action"))
    };
    (service, operation.unwrap_or_else(|| "unknown".to_owned()))
}

/// `Authorization: AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/lambda/aws4_request, ...`
fn service_of(headers: &HeaderMap) -> Option<String> {
    let authorization = header(headers, "authorization")?;
    let scope = authorization.split("Credential=").nth(1)?;
    let scope = scope.split([',', ' ']).next()?;
    let mut parts = scope.split('/');
    // access key id / date / region / service / aws4_request
    parts.nth(3).map(str::to_owned)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// The Lambda operation whose request URI matches; with several matches (a literal segment vs a
/// label, or a fixed query parameter) the most specific template wins.
pub(crate) fn lambda_operation(method: &str, path: &str, query: &str) -> Option<&'static str> {
    // A trailing slash names the same resource (moto and Lambda accept both).
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    LAMBDA_OPERATIONS
        .iter()
        .filter(|(op_method, _, _)| *op_method == method)
        .filter_map(|(_, template, name)| {
            let (template_path, required_query) = match template.split_once('?') {
                Some((path, query)) => (path, Some(query)),
                None => (*template, None),
            };
            if let Some(required) = required_query
                && !query.split('&').any(|pair| pair == required)
            {
                return None;
            }
            // A template that also fixes a query parameter is the more specific one.
            match_template(template_path, &segments)
                .map(|literals| ((literals, required_query.is_some()), *name))
        })
        .max_by_key(|(specificity, _)| *specificity)
        .map(|(_, name)| name)
}

/// The number of literal segments when `segments` fits the template, else `None`.
fn match_template(template: &str, segments: &[&str]) -> Option<usize> {
    let expected: Vec<&str> = template.trim_matches('/').split('/').collect();
    let mut literals = 0;
    for (index, part) in expected.iter().enumerate() {
        if part.starts_with('{') && part.ends_with("+}") {
            return (segments.len() > index).then_some(literals);
        }
        let actual = segments.get(index)?;
        if part.starts_with('{') {
            if actual.is_empty() {
                return None;
            }
        } else if part != actual {
            return None;
        } else {
            literals += 1;
        }
    }
    (segments.len() == expected.len()).then_some(literals)
}

/// A value of an `application/x-www-form-urlencoded` body or query string.
fn form_value(form: &[u8], key: &str) -> Option<String> {
    let text = std::str::from_utf8(form).ok()?;
    text.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == key).then(|| value.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str, authorization: Option<&str>) -> Parts {
        let mut builder = http::Request::builder().method(method).uri(uri);
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    const LAMBDA_AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=abc";
    const EC2_AUTH: &str = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=abc";

    #[test]
    fn lambda_operations_are_named_by_method_and_path() {
        let cases = [
            (
                "POST",
                "/2025-11-30/capacity-providers",
                "CreateCapacityProvider",
            ),
            (
                "GET",
                "/2025-11-30/capacity-providers",
                "ListCapacityProviders",
            ),
            (
                "GET",
                "/2025-11-30/capacity-providers/cp1",
                "GetCapacityProvider",
            ),
            (
                "PUT",
                "/2025-11-30/capacity-providers/cp1",
                "UpdateCapacityProvider",
            ),
            (
                "DELETE",
                "/2025-11-30/capacity-providers/cp1",
                "DeleteCapacityProvider",
            ),
            (
                "GET",
                "/2025-11-30/capacity-providers/cp1/function-versions",
                "ListFunctionVersionsByCapacityProvider",
            ),
            (
                "PUT",
                "/2025-11-30/functions/fn/function-scaling-config",
                "PutFunctionScalingConfig",
            ),
            ("POST", "/2015-03-31/functions", "CreateFunction"),
            ("GET", "/2015-03-31/functions", "ListFunctions"),
            ("GET", "/2015-03-31/functions/", "ListFunctions"),
            ("GET", "/2015-03-31/functions/fn", "GetFunction"),
            (
                "GET",
                "/2015-03-31/functions/fn/configuration",
                "GetFunctionConfiguration",
            ),
            (
                "POST",
                "/2015-03-31/functions/fn/versions",
                "PublishVersion",
            ),
            ("POST", "/2017-03-31/tags/arn%3Aaws%3Alambda", "TagResource"),
        ];
        for (method, path, expected) in cases {
            let request = parts(method, path, Some(LAMBDA_AUTH));
            assert_eq!(
                identify(&request, b""),
                ("lambda".to_owned(), expected.to_owned()),
                "{method} {path}"
            );
        }
    }

    #[test]
    fn a_query_literal_in_the_request_uri_must_be_present() {
        assert_eq!(
            lambda_operation(
                "GET",
                "/2019-09-30/functions/fn/provisioned-concurrency",
                "List=ALL"
            ),
            Some("ListProvisionedConcurrencyConfigs")
        );
        assert_eq!(
            lambda_operation(
                "GET",
                "/2019-09-30/functions/fn/provisioned-concurrency",
                ""
            ),
            Some("GetProvisionedConcurrencyConfig")
        );
    }

    #[test]
    fn query_protocol_operations_are_named_by_their_action() {
        let request = parts("POST", "/", Some(EC2_AUTH));
        let body = b"Action=DescribeSubnets&Version=2016-11-15&SubnetId.1=subnet-1";
        assert_eq!(
            identify(&request, body),
            ("ec2".to_owned(), "DescribeSubnets".to_owned())
        );
    }

    #[test]
    fn unsigned_or_unknown_requests_are_named_unknown() {
        let request = parts("GET", "/moto-api/", None);
        assert_eq!(
            identify(&request, b""),
            ("unknown".to_owned(), "unknown".to_owned())
        );
        let request = parts("GET", "/2099-01-01/nothing", Some(LAMBDA_AUTH));
        assert_eq!(identify(&request, b"").1, "unknown");
    }
}
