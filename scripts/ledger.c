/* The load generator's per-delivery accounting in C (scripts/loadgen.py builds it and calls it through ctypes;
 * where it cannot, loadgen's Python loop does the same). One call reads the payloads "B|sender|seq|stamp|" of
 * a read's whole lines, split exactly as loadgen.fields() splits them, and updates one receiver's books. */

#include <stdint.h>
#include <string.h>

/* What the walk returns when it does not return how many latencies it sampled; the books are untouched. */
#define PYTHON (-1)    /* the Python loop's to read: a "|" count not a multiple of 4, or a field not a number */
#define TOO_SMALL (-2) /* more payloads than `capacity`: the caller grows `samples` and `pairs`, and calls again */

/* One generator's books (loadgen.Books mirrors it field for field). */
typedef struct {
    int64_t clients;
    int64_t every;        /* keep every n-th latency, counting every payload read (echoes too) */
    int64_t capacity;     /* payloads `samples` and `pairs` have room for */
    double *samples;      /* out: this read's latencies, ms */
    int64_t *pairs;       /* scratch: this read's sender and sequence number per payload */
    int64_t now;          /* in: when this read's data arrived, ns since the epoch */
    int64_t deliveries;
    int64_t duplicated;
    int64_t out_of_order;
    int64_t seen;         /* payloads read so far, over every receiver */
} books_t;

/* The digits from *at up to the next "|" as a number (a send time in ns has 19 of them); *at moves past
 * the "|". Anything else there (a sign, a space, no digit, no "|") is left to Python's int(). */
static int number(const char **at, const char *end, int64_t *value) {
    const char *start = *at, *digit = start;
    uint64_t found = 0;
    for (; digit < end && *digit >= '0' && *digit <= '9' && digit - start < 19; digit++)
        found = found * 10 + (uint64_t)(*digit - '0');
    if (digit == start || digit == end || *digit != '|' || found > INT64_MAX)
        return 0;
    *value = (int64_t)found;
    *at = digit + 1;
    return 1;
}

/* `lines` holds `length` bytes of whole lines read by `receiver`, whose last sequence number and gaps per
 * sender are `last` and `gaps` (`clients` entries each). The arguments are C ints, not int64_t: ctypes passes
 * Python ints as those without argtypes, whose conversions cost more than the walk of a short read. */
int ledger_walk(books_t *books, int64_t *last, int64_t *gaps, int receiver, const char *lines, int length) {
    /* First every payload is read into `pairs` (and its latency sampled), the books untouched, so that a read
     * the Python loop must take is handed over whole; then the books are brought up to date. */
    const char *at = lines, *end = lines + length, *bar;
    int64_t payloads = 0, every = books->every, *pairs = books->pairs;
    int64_t due = (every - 1 - books->seen % every) % every; /* the index of the next payload sampled */
    int sampled = 0;
    while ((bar = memchr(at, '|', (size_t)(end - at))) != NULL) {
        if (payloads == books->capacity)
            return TOO_SMALL;
        int64_t sender, seq, sent;
        at = bar + 1;
        const char *name = at;
        /* A sender is a client's number as loadgen writes it (Ledger.index): no leading zero, below clients. */
        if (!number(&at, end, &sender) || (*name == '0' && at - name > 2) || sender >= books->clients
            || !number(&at, end, &seq))
            return PYTHON;
        if (payloads == due && sender != receiver) {
            if (!number(&at, end, &sent))
                return PYTHON;
            books->samples[sampled++] = (double)(books->now - sent) / 1e6;
        } else if ((bar = memchr(at, '|', (size_t)(end - at))) != NULL) {
            at = bar + 1;
        } else {
            return PYTHON;
        }
        if (payloads == due)
            due += every;
        pairs[2 * payloads] = sender;
        pairs[2 * payloads + 1] = seq;
        payloads++;
    }
    int64_t echoes = last[receiver];
    for (int64_t index = 0; index < payloads; index++) {
        int64_t sender = pairs[2 * index], seq = pairs[2 * index + 1];
        if (seq - 1 == last[sender]) { /* seq >= 0: no overflow, where last + 1 could have one */
            last[sender] = seq;
        } else if (seq == last[sender]) {
            books->duplicated++;
        } else if (seq < last[sender]) {
            books->out_of_order++;
        } else {
            gaps[sender] += seq - last[sender] - 1;
            last[sender] = seq;
        }
    }
    books->deliveries += payloads - (last[receiver] - echoes); /* a sender's own line coming back is none */
    books->seen += payloads;
    return sampled;
}
