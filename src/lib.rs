//! lmi-operator
