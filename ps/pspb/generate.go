// Package pspb holds the gRPC service of the Gophas parameter server and
// model store: ps.proto and the code generated from it. Regenerate with
// `make proto`; `make proto-check` fails when the committed code is stale.
package pspb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative ps.proto
