//! Start-up failures of the real binary: the message names what is wrong and what was expected,
//! and a server that cannot start leaves nothing behind.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `tideline serve ARGS`, which must exit within 10 s; returns (success, stderr).
fn serve_must_fail(args: &[&str]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tideline"))
        .arg("serve")
        .args(args)
        .env_remove("TIDELINE_LISTEN")
        .env_remove("TIDELINE_DATA_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tideline");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for tideline") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tideline serve {args:?} was still running after 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child.stderr.take().expect("piped stderr").read_to_string(&mut stderr).expect("read stderr");
    (status.success(), stderr)
}

#[test]
fn a_listen_value_without_host_says_what_is_expected() {
    let (success, stderr) = serve_must_fail(&["--listen", "4599", "--in-memory"]);
    assert!(!success);
    assert!(
        stderr.contains("invalid value '4599' for '--listen <LISTEN>': expected HOST:PORT such as 127.0.0.1:4567"),
        "{stderr}"
    );
}

#[test]
fn a_taken_address_is_named_and_no_data_dir_is_left_behind() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let address = taken.local_addr().expect("address").to_string();
    let parent = tempfile::tempdir().expect("temp dir");
    let data_dir = parent.path().join("data");
    let data_dir_arg = data_dir.to_str().expect("utf-8 path");
    let (success, stderr) = serve_must_fail(&["--listen", &address, "--data-dir", data_dir_arg]);
    assert!(!success);
    assert!(stderr.contains(&format!("tideline: cannot listen on {address}: Address already in use")), "{stderr}");
    assert!(!data_dir.exists(), "a server that could not listen created {}", data_dir.display());
}

#[test]
fn a_bad_fsync_policy_says_what_is_expected() {
    for bad in ["sometimes", "interval=0", "interval=1s", "interval=600000"] {
        let (success, stderr) = serve_must_fail(&["--listen", "127.0.0.1:0", "--in-memory", "--fsync", bad]);
        assert!(!success, "--fsync {bad} accepted");
        let expected = format!(
            "invalid value '{bad}' for '--fsync <FSYNC>': expected `always` or `interval=<ms>` with <ms> from 1 to 60000"
        );
        assert!(stderr.contains(&expected), "{stderr}");
    }
}
