// Package conf is Switchyard's configuration: plain data types, their
// defaults (Defaults), YAML loading with unknown keys refused, ${ENV}
// references for secrets, and validation whose messages name the file,
// the line and the field. switchyard.example.yaml documents every key
// with its default and is loaded by a test so it cannot drift.
//
// Secrets (type Secret) print as "******" or as their ${VAR} reference,
// never as the password.
package conf
