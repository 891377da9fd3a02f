module librio/bindings/go

go 1.19
