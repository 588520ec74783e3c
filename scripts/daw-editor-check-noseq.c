/*
 * A stand-in for the ALSA sequencer, for scripts/daw-editor-check.sh only (LD_PRELOAD into
 * Qtractor). Qtractor refuses to start its session unless it can open the ALSA sequencer
 * ("default"), which needs the kernel's /dev/snd/seq: containers and CI machines have none.
 * Loaded before libasound, this file answers the sequencer calls Qtractor 0.9.x makes on that
 * handle: the open succeeds with a handle on which Qtractor can create its own ports, but which
 * shows no other clients or ports, delivers no events and has a poll descriptor that never
 * becomes readable. Any other sequencer open ("hw", which Qtractor uses
 * for optional port announcements) fails as it would without the device. MIDI does not work
 * under it; audio (JACK) and plugins are untouched. Written for this check, no ALSA headers
 * needed:
 *
 *   cc -shared -fPIC -O2 -o noseq.so scripts/daw-editor-check-noseq.c
 *   LD_PRELOAD=$PWD/noseq.so qtractor ...
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

typedef struct fake_seq {
	int magic;
} snd_seq_t;

static snd_seq_t the_seq = { 1 };
static int pipe_fds[2] = { -1, -1 };
static int next_port = 0;

int snd_seq_open(snd_seq_t **seq, const char *name, int streams, int mode)
{
	(void)streams;
	(void)mode;
	if (!seq)
		return -EINVAL;
	*seq = NULL;
	if (!name || strcmp(name, "default") != 0)
		return -ENOENT;
	if (pipe_fds[0] < 0 && pipe(pipe_fds) != 0)
		return -errno;
	*seq = &the_seq;
	return 0;
}

int snd_seq_close(snd_seq_t *seq) { (void)seq; return 0; }
int snd_seq_set_client_name(snd_seq_t *seq, const char *name) { (void)seq; (void)name; return 0; }
int snd_seq_client_id(snd_seq_t *seq) { (void)seq; return 128; }
int snd_seq_alloc_queue(snd_seq_t *seq) { (void)seq; return 0; }
int snd_seq_free_queue(snd_seq_t *seq, int q) { (void)seq; (void)q; return 0; }
int snd_seq_set_queue_timer(snd_seq_t *seq, int q, void *timer) { (void)seq; (void)q; (void)timer; return 0; }
int snd_seq_set_queue_tempo(snd_seq_t *seq, int q, void *tempo) { (void)seq; (void)q; (void)tempo; return 0; }
int snd_seq_get_queue_tempo(snd_seq_t *seq, int q, void *tempo) { (void)seq; (void)q; (void)tempo; return 0; }
int snd_seq_get_queue_status(snd_seq_t *seq, int q, void *status) { (void)seq; (void)q; (void)status; return 0; }
int snd_seq_control_queue(snd_seq_t *seq, int q, int type, int value, void *ev)
{
	(void)seq; (void)q; (void)type; (void)value; (void)ev;
	return 0;
}

int snd_seq_create_simple_port(snd_seq_t *seq, const char *name, unsigned int caps, unsigned int type)
{
	(void)seq; (void)name; (void)caps; (void)type;
	return next_port++;
}
int snd_seq_delete_simple_port(snd_seq_t *seq, int port) { (void)seq; (void)port; return 0; }
/* Qtractor reads back its own ports' info (zeroed by snd_seq_port_info_alloca) and sets it. */
int snd_seq_get_port_info(snd_seq_t *seq, int port, void *info) { (void)seq; (void)port; (void)info; return 0; }
int snd_seq_set_port_info(snd_seq_t *seq, int port, void *info) { (void)seq; (void)port; (void)info; return 0; }
int snd_seq_get_any_client_info(snd_seq_t *seq, int client, void *info) { (void)seq; (void)client; (void)info; return -ENOENT; }
int snd_seq_get_any_port_info(snd_seq_t *seq, int client, int port, void *info)
{
	(void)seq; (void)client; (void)port; (void)info;
	return -ENOENT;
}
int snd_seq_query_next_client(snd_seq_t *seq, void *info) { (void)seq; (void)info; return -ENOENT; }
int snd_seq_query_next_port(snd_seq_t *seq, void *info) { (void)seq; (void)info; return -ENOENT; }
int snd_seq_query_port_subscribers(snd_seq_t *seq, void *subs) { (void)seq; (void)subs; return -ENOENT; }
int snd_seq_subscribe_port(snd_seq_t *seq, void *sub) { (void)seq; (void)sub; return -ENOENT; }
int snd_seq_unsubscribe_port(snd_seq_t *seq, void *sub) { (void)seq; (void)sub; return -ENOENT; }

int snd_seq_poll_descriptors_count(snd_seq_t *seq, short events) { (void)seq; (void)events; return 1; }
int snd_seq_poll_descriptors(snd_seq_t *seq, struct pollfd *pfds, unsigned int space, short events)
{
	(void)seq;
	if (space < 1 || !pfds)
		return 0;
	pfds[0].fd = pipe_fds[0];
	pfds[0].events = events;
	pfds[0].revents = 0;
	return 1;
}
int snd_seq_event_input(snd_seq_t *seq, void **ev) { (void)seq; if (ev) *ev = NULL; return -EAGAIN; }
int snd_seq_event_input_pending(snd_seq_t *seq, int fetch) { (void)seq; (void)fetch; return 0; }
int snd_seq_event_output(snd_seq_t *seq, void *ev) { (void)seq; (void)ev; return 0; }
int snd_seq_event_output_direct(snd_seq_t *seq, void *ev) { (void)seq; (void)ev; return 0; }
int snd_seq_drain_output(snd_seq_t *seq) { (void)seq; return 0; }
int snd_seq_drop_output(snd_seq_t *seq) { (void)seq; return 0; }
int snd_seq_drop_input(snd_seq_t *seq) { (void)seq; return 0; }
int snd_seq_remove_events(snd_seq_t *seq, void *rmp) { (void)seq; (void)rmp; return 0; }
