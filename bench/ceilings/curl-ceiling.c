/*
 * How fast libcurl alone sends into an SMTP sink, without the waitlist around it: CONNECTIONS
 * connections reused for COUNT copies of MESSAGEFILE (CRLF line ends, no line starting with a dot),
 * either with curl_easy_perform on one thread per connection (easy), with the multi interface
 * driving every connection from one thread (multi), or, one thread per connection, over a
 * connection libcurl set up (CURLOPT_CONNECT_ONLY) with curl_easy_send and curl_easy_recv:
 * MAIL FROM, RCPT TO and DATA written together (pipelined) or one at a time (stepwise), as the
 * waitlist's SMTP sessions do since bb2905b.
 *
 *   gcc -O2 -o curl-ceiling bench/ceilings/curl-ceiling.c -lcurl -lpthread
 *   ./curl-ceiling easy|multi|pipelined|stepwise smtp://127.0.0.1:PORT/localhost MESSAGEFILE CONNECTIONS COUNT
 *
 * It prints the rate; run it under /usr/bin/time for its CPU. bench/README.md has the numbers.
 */
#include <curl/curl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *message; static size_t message_len;
static const char *url; static long total; static long done_count = 0;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

struct upload { size_t offset; };
static size_t readcb(char *buf, size_t size, size_t n, void *p) {
    struct upload *u = p; size_t left = message_len - u->offset; size_t len = size * n < left ? size * n : left;
    memcpy(buf, message + u->offset, len); u->offset += len; return len;
}
static CURL *make(struct upload *u, struct curl_slist *rcpt) {
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, "<waitlist@localhost>");
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, readcb);
    curl_easy_setopt(h, CURLOPT_READDATA, u);
    curl_easy_setopt(h, CURLOPT_INFILESIZE, (long)message_len);
    return h;
}
static int take(void) { int ok; pthread_mutex_lock(&lock); ok = done_count < total; if (ok) done_count++; pthread_mutex_unlock(&lock); return ok; }
static void *lane(void *arg) {
    struct curl_slist *rcpt = curl_slist_append(NULL, "<subscriber@example.org>");
    struct upload u; CURL *h = make(&u, rcpt);
    while (take()) { u.offset = 0; if (curl_easy_perform(h) != CURLE_OK) { fprintf(stderr, "failed\n"); exit(1); } }
    curl_easy_cleanup(h); return NULL;
}
static int pipelined;
static void send_all(CURL *h, curl_socket_t s, const char *p, size_t n) {
    while (n) {
        size_t w = 0; CURLcode c = curl_easy_send(h, p, n, &w);
        if (c == CURLE_AGAIN) { struct pollfd f = {s, POLLOUT, 0}; poll(&f, 1, 5000); continue; }
        if (c != CURLE_OK) { fprintf(stderr, "send failed: %d\n", c); exit(1); }
        p += w; n -= w;
    }
}
/* Reads until `replies` replies have ended; good enough for a sink whose replies are one line each. */
static void read_replies(CURL *h, curl_socket_t s, int replies) {
    char buf[4096]; int seen = 0;
    while (seen < replies) {
        size_t r = 0; CURLcode c = curl_easy_recv(h, buf, sizeof buf, &r);
        if (c == CURLE_AGAIN) { struct pollfd f = {s, POLLIN, 0}; poll(&f, 1, 5000); continue; }
        if (c != CURLE_OK || r == 0) { fprintf(stderr, "recv failed: %d\n", c); exit(1); }
        for (size_t i = 0; i < r; i++) if (buf[i] == '\n') seen++;
    }
}
static void *connected_lane(void *arg) {
    static const char *commands[] = {"MAIL FROM:<waitlist@localhost>\r\n", "RCPT TO:<subscriber@example.org>\r\n", "DATA\r\n"};
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
    if (curl_easy_perform(h) != CURLE_OK) { fprintf(stderr, "connect failed\n"); exit(1); }
    curl_socket_t s; curl_easy_getinfo(h, CURLINFO_ACTIVESOCKET, &s);
    char envelope[256]; snprintf(envelope, sizeof envelope, "%s%s%s", commands[0], commands[1], commands[2]);
    while (take()) {
        if (pipelined) { send_all(h, s, envelope, strlen(envelope)); read_replies(h, s, 3); }
        else for (int i = 0; i < 3; i++) { send_all(h, s, commands[i], strlen(commands[i])); read_replies(h, s, 1); }
        send_all(h, s, message, message_len); /* the message, then the end of DATA, in one write */
        read_replies(h, s, 1);
    }
    curl_easy_cleanup(h); return NULL;
}
int main(int argc, char **argv) {
    if (argc < 6) { fprintf(stderr, "usage: ceiling easy|multi|pipelined|stepwise URL MESSAGEFILE CONNECTIONS COUNT\n"); return 64; }
    url = argv[2]; int n = atoi(argv[4]); total = atol(argv[5]);
    FILE *f = fopen(argv[3], "rb"); fseek(f, 0, SEEK_END); message_len = ftell(f); rewind(f);
    message = malloc(message_len); fread(message, 1, message_len, f); fclose(f);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a);
    if (strcmp(argv[1], "pipelined") == 0 || strcmp(argv[1], "stepwise") == 0) {
        pipelined = strcmp(argv[1], "pipelined") == 0;
        message = realloc(message, message_len + 3); memcpy(message + message_len, ".\r\n", 3); message_len += 3;
        pthread_t t[64]; for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, connected_lane, NULL);
        for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    } else if (strcmp(argv[1], "easy") == 0) {
        pthread_t t[64]; for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, lane, NULL);
        for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    } else {
        CURLM *m = curl_multi_init();
        struct curl_slist *rcpt = curl_slist_append(NULL, "<subscriber@example.org>");
        struct upload u[64]; CURL *h[64]; long started = 0, finished = 0;
        for (int i = 0; i < n && started < total; i++) { u[i].offset = 0; h[i] = make(&u[i], rcpt); curl_easy_setopt(h[i], CURLOPT_PRIVATE, (void *)(long)i); curl_multi_add_handle(m, h[i]); started++; }
        int running = 1;
        while (finished < total) {
            curl_multi_perform(m, &running);
            CURLMsg *msg; int q;
            while ((msg = curl_multi_info_read(m, &q))) {
                if (msg->msg != CURLMSG_DONE) continue;
                if (msg->data.result != CURLE_OK) { fprintf(stderr, "failed %d\n", msg->data.result); return 1; }
                finished++; CURL *e = msg->easy_handle; long i; curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&i);
                curl_multi_remove_handle(m, e);
                if (started < total) { u[i].offset = 0; curl_multi_add_handle(m, e); started++; }
            }
            if (finished < total) curl_multi_poll(m, NULL, 0, 1000, NULL);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    printf("%s %d connections: %ld messages in %.2f s, %.0f/s\n", argv[1], n, total, s, total / s);
    return 0;
}
