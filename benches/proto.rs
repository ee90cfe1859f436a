//! Micro-benchmarks of the receiving hot paths: command parsing, DATA
//! decoding with dot-unstuffing, and cleanup's header processing.
//! Run with `cargo bench --bench proto`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use postern::cleanup::headers::{self, HeaderContext};
use postern::proto::command;
use postern::proto::data::DataDecoder;
use postern::proto::params::MailParams;

fn commands(c: &mut Criterion) {
    let lines: [&[u8]; 4] = [
        b"EHLO client.example.com",
        b"MAIL FROM:<sender@example.com> SIZE=4096 BODY=8BITMIME",
        b"RCPT TO:<recipient@example.net> NOTIFY=SUCCESS,FAILURE",
        b"DATA",
    ];
    c.bench_function("parse 4 commands", |b| {
        b.iter(|| {
            for line in lines {
                black_box(command::parse(black_box(line)));
            }
        })
    });
    c.bench_function("parse MAIL parameters", |b| {
        b.iter(|| MailParams::parse(black_box(" SIZE=4096 BODY=8BITMIME RET=HDRS ENVID=abc")))
    });
}

fn data(c: &mut Criterion) {
    let mut input = Vec::new();
    input.extend_from_slice(b"Subject: bench\r\n\r\n");
    while input.len() < 1 << 20 {
        input.extend_from_slice(
            b"..a stuffed line of ordinary length, as mail bodies have them, more or less.\r\n",
        );
        input.extend_from_slice(
            b"A plain line of text in the body of the message, about seventy characters.\r\n",
        );
    }
    input.extend_from_slice(b".\r\n");
    let mut group = c.benchmark_group("data");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("decode 1 MiB in 64 KiB reads", |b| {
        let mut out = Vec::with_capacity(64 * 1024);
        b.iter(|| {
            let mut decoder = DataDecoder::default();
            for chunk in input.chunks(64 * 1024) {
                out.clear();
                black_box(decoder.feed(chunk, &mut out));
            }
            decoder.size
        })
    });
    group.finish();
}

fn header_section(c: &mut Criterion) {
    let section = b"From: Sender <sender@example.com>\r\nTo: Recipient <recipient@example.net>\r\nSubject: A subject line\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nX-Mailer: bench\r\nReceived: from a (b [192.0.2.1])\r\n\tby c with ESMTP; Mon, 2 Mar 2026 10:00:00 +0000\r\n";
    let ctx = HeaderContext {
        received: "Received: from client.example (unknown [192.0.2.7])\r\n\tby mx.example (Postern) with ESMTP id 0dZJJ0nZ5Q;\r\n\tMon, 2 Mar 2026 10:00:00 +0000\r\n",
        strip_bcc: false,
        message_id: "<20260302100000.0dZJJ0nZ5Q@mx.example>",
        date: "Mon, 02 Mar 2026 10:00:00 +0000",
        from: "sender@example.com",
    };
    c.bench_function("cleanup header section", |b| {
        b.iter(|| headers::process(black_box(section), &ctx, &mut |_| None))
    });
}

criterion_group!(benches, commands, data, header_section);
criterion_main!(benches);
