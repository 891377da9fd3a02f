//! Environment variables of DESIGN.md. One test function, so no other test
//! in this binary races with the environment it changes.

use rio::{BackendChoice, BackendKind, Runtime, RuntimeConfig};

fn open(backend: BackendChoice) -> rio::Result<Runtime> {
    Runtime::new(&RuntimeConfig { backend, ..Default::default() })
}

#[test]
fn environment_variables() {
    std::env::set_var("RUSTFS_ENABLE_IO_URING", "false");
    let rt = open(BackendChoice::Auto).unwrap();
    assert_eq!(rt.backend(), BackendKind::ThreadPool);
    let reason = rt.capabilities().io_uring_unavailable_reason.clone().unwrap();
    assert!(reason.contains("RUSTFS_ENABLE_IO_URING=false"), "{reason}");
    // An explicit config field wins over the variable.
    assert_eq!(open(BackendChoice::IoUring).unwrap().backend(), BackendKind::IoUring);

    std::env::set_var("RUSTFS_ENABLE_IO_URING", "true");
    assert_eq!(open(BackendChoice::Auto).unwrap().backend(), BackendKind::IoUring);
    assert_eq!(open(BackendChoice::ThreadPool).unwrap().backend(), BackendKind::ThreadPool);

    std::env::set_var("RUSTFS_ENABLE_IO_URING", "maybe");
    let e = open(BackendChoice::Auto).err().unwrap();
    assert_eq!(e.errno(), libc::EINVAL);
    assert!(e.message().contains("RUSTFS_ENABLE_IO_URING"), "{}", e.message());
    std::env::remove_var("RUSTFS_ENABLE_IO_URING");

    std::env::set_var("RUSTFS_MAX_CONCURRENT_FILE_OPS", "7");
    let rt = open(BackendChoice::Auto).unwrap();
    assert_eq!(rt.capabilities().settings.max_concurrent_ops, 7);
    let explicit = Runtime::new(&RuntimeConfig { max_concurrent_ops: Some(3), ..Default::default() }).unwrap();
    assert_eq!(explicit.capabilities().settings.max_concurrent_ops, 3);
    for bad in ["0", "-1", "lots", ""] {
        std::env::set_var("RUSTFS_MAX_CONCURRENT_FILE_OPS", bad);
        let e = open(BackendChoice::Auto).err().unwrap();
        assert_eq!(e.errno(), libc::EINVAL, "{bad:?}");
        assert!(e.message().contains("RUSTFS_MAX_CONCURRENT_FILE_OPS"), "{}", e.message());
    }
    std::env::remove_var("RUSTFS_MAX_CONCURRENT_FILE_OPS");
    assert_eq!(open(BackendChoice::Auto).unwrap().capabilities().settings.max_concurrent_ops, 1024);
}
