/*
 * The reference for the Kafka wrapper's throughput: librdkafka's C API doing the same work as
 * Benchmarks/Sources/kafka-throughput, in the same run.
 *
 *   rdkafka_bench produce BOOTSTRAP TOPIC COUNT SIZE
 *   rdkafka_bench consume BOOTSTRAP TOPIC COUNT GROUP
 *
 * Prints one line: "<mode> <count> messages in <seconds> s: <messages/s> msg/s".
 * Consumer: reads each message's headers and timestamp and copies its key and value out, the
 * work the wrapper does for every message.
 * Producer: idempotent, acks=all, linger.ms=5 (the wrapper's defaults), keys key-<i % 64> (the 64
 * made once, as the Swift program makes them), values lent to librdkafka rather than copied
 * (C_COPY=1 copies them), delivery reports served by a poll loop, after one warm-up message
 * (WARMUP=N: N more, the same way, before the clock starts). Consumer: a group member with manual commits, reading
 * until COUNT messages arrived.
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long delivered = 0, failed = 0;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The CPU time of the whole process, in seconds. */
static double cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    if (m->err) failed++; else delivered++;
}

/* Produces `count` messages, keys key-<i % 64>, serving delivery reports as it goes, and waits for
 * the last report. Returns non-zero when librdkafka refused a message. */
static int produce_all(rd_kafka_t *rk, const char *topic, long count, char *value, long size, char keys[][16],
                       const int *key_sizes, int flags) {
    long base = delivered + failed;
    for (long i = 0; i < count; i++) {
        while (1) {
            rd_kafka_resp_err_t e = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(keys[i % 64], key_sizes[i % 64]),
                RD_KAFKA_V_VALUE(value, size), RD_KAFKA_V_MSGFLAGS(flags), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) { rd_kafka_poll(rk, 10); continue; }
            if (e) { fprintf(stderr, "produce: %s\n", rd_kafka_err2str(e)); return 1; }
            break;
        }
        rd_kafka_poll(rk, 0);
    }
    while (delivered + failed - base < count) rd_kafka_poll(rk, 100);
    return 0;
}

static void set(rd_kafka_conf_t *conf, const char *name, const char *value) {
    char err[512];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s produce|consume BOOTSTRAP TOPIC COUNT SIZE|GROUP\n", argv[0]);
        return 64;
    }
    const char *mode = argv[1], *bootstrap = argv[2], *topic = argv[3];
    long count = atol(argv[4]);
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", bootstrap);
    /* Extra properties for experiments, as for the Swift program: KAFKA_PROPERTIES="name=value,...". */
    const char *extra = getenv("KAFKA_PROPERTIES");
    if (extra && *extra) {
        char *copy = strdup(extra), *saveptr = NULL;
        for (char *pair = strtok_r(copy, ",", &saveptr); pair; pair = strtok_r(NULL, ",", &saveptr)) {
            char *equals = strchr(pair, '=');
            if (!equals) continue;
            *equals = '\0';
            set(conf, pair, equals + 1);
        }
        free(copy);
    }
    if (strcmp(mode, "produce") == 0) {
        long size = atol(argv[5]);
        set(conf, "enable.idempotence", "true");
        set(conf, "acks", "-1");
        set(conf, "linger.ms", "5");
        set(conf, "batch.size", "1048576");
        set(conf, "queue.buffering.max.messages", "100000");
        rd_kafka_conf_set_dr_msg_cb(conf, dr);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        if (!rk) { fprintf(stderr, "%s\n", err); return 1; }
        char *value = malloc(size);
        memset(value, 'x', size);
        /* The 64 keys, made once, as the Swift program makes them. */
        char keys[64][16];
        int key_sizes[64];
        for (int k = 0; k < 64; k++) key_sizes[k] = snprintf(keys[k], sizeof(keys[k]), "key-%d", k);
        /* librdkafka points at the value instead of copying it, as the wrapper does (the value
         * outlives every delivery report). C_COPY=1 copies it (RD_KAFKA_MSG_F_COPY), as
         * librdkafka's examples do. The key is copied either way. */
        int flags = getenv("C_COPY") && atoi(getenv("C_COPY")) ? RD_KAFKA_MSG_F_COPY : 0;
        /* Warm up outside the measurement: the producer id, the topic's metadata, the connections;
         * with WARMUP=N, N messages sent the same way (see produce_all). */
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY("key-0", 5), RD_KAFKA_V_VALUE(value, size),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        while (delivered + failed < 1) rd_kafka_poll(rk, 10);
        delivered = failed = 0;
        long warmup = getenv("WARMUP") ? atol(getenv("WARMUP")) : 0;
        if (warmup > 0) {
            if (produce_all(rk, topic, warmup, value, size, keys, key_sizes, flags)) return 1;
            if (failed) return 1;
            delivered = failed = 0;
        }
        double start = now(), cpu_start = cpu();
        if (produce_all(rk, topic, count, value, size, keys, key_sizes, flags)) return 1;
        double seconds = now() - start, cpu_seconds = cpu() - cpu_start;
        printf("produce %ld messages in %.3f s: %.0f msg/s, CPU %.0f ns/msg (%ld failed)\n", count, seconds,
               count / seconds, cpu_seconds * 1e9 / count, failed);
        rd_kafka_destroy(rk);
        free(value);
        return failed ? 1 : 0;
    }
    set(conf, "group.id", argv[5]);
    set(conf, "enable.auto.commit", "false");
    set(conf, "enable.auto.offset.store", "false");
    set(conf, "auto.offset.reset", "earliest");
    set(conf, "session.timeout.ms", "6000");
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) { fprintf(stderr, "%s\n", err); return 1; }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    long received = 0, untimed = 0;
    double start = 0, cpu_start = 0;
    /* DRAIN_MS: after the first message, let librdkafka fetch for this long before the clock
     * starts, so that what is timed is the reader alone, not the broker. */
    long drain = getenv("DRAIN_MS") ? atol(getenv("DRAIN_MS")) : 0;
    while (received < count) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (!m->err) {
            if (received == 0) {
                if (drain > 0) {
                    struct timespec pause = {drain / 1000, (drain % 1000) * 1000000L};
                    nanosleep(&pause, NULL);
                    untimed = 1;
                }
                start = now();
                cpu_start = cpu();
            }
            received++;
            /* The same work as the wrapper: read the headers and the timestamp, and copy the key
             * and the value out of librdkafka's buffers. */
            rd_kafka_headers_t *headers = NULL;
            if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
                const char *name;
                const void *bytes;
                size_t size;
                for (size_t h = 0; rd_kafka_header_get_all(headers, h, &name, &bytes, &size) == 0; h++) {
                    void *copy = malloc(size + 1);
                    memcpy(copy, bytes, size);
                    free(copy);
                }
            }
            rd_kafka_timestamp_type_t type;
            (void)rd_kafka_message_timestamp(m, &type);
            void *key = m->key_len ? malloc(m->key_len) : NULL, *value = m->len ? malloc(m->len) : NULL;
            if (key) memcpy(key, m->key, m->key_len);
            if (value) memcpy(value, m->payload, m->len);
            free(key);
            free(value);
        }
        rd_kafka_message_destroy(m);
    }
    double seconds = now() - start, cpu_seconds = cpu() - cpu_start;
    long timed = received - untimed;
    printf("consume %ld messages in %.3f s: %.0f msg/s, CPU %.0f ns/msg\n", timed, seconds, timed / seconds,
           cpu_seconds * 1e9 / timed);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return 0;
}
