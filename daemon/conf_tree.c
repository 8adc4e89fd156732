/* SPDX-License-Identifier: MIT */
/*
 * The YAML tree behind struct oskr_conf and its typed readers.
 *
 * libyaml's event API is folded into a small tree where every node keeps
 * its file, 1-based line and column, and dotted path, so that any later
 * check — ours or a plugin's — can say "file:line:col: path: why".
 * Configuration is plain data: anchors, aliases and tags are refused
 * rather than half-supported, and so are duplicate keys (libyaml accepts
 * them silently; the last one winning would hide typos).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf, vasprintf */
#endif
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "log.h"

/* Configs are a few KiB; the limits keep hostile input cheap. */
#define CONF_MAX_TEXT (1u << 20)
#define CONF_MAX_DEPTH 64
#define CONF_MAX_NODES 100000
#define CONF_SHOWN_SCALAR 40

static _Thread_local char last_error[1024];

const char *oskr__conf_last_error(void)
{
	return last_error;
}

void oskr__conf_clear_last_error(void)
{
	last_error[0] = '\0';
}

/* ---- messages ---- */

static int vconf_errorf(char **err, const struct oskr_conf *node,
			const char *fmt, va_list ap)
{
	char *message = NULL;
	if (vasprintf(&message, fmt, ap) < 0)
		message = NULL;
	if (node)
		oskr__errorf(err, "%s:%u:%u: %s", node->file, node->line,
			     node->column, message ? message : "out of memory");
	else
		oskr__errorf(err, "%s", message ? message : "out of memory");
	free(message);
	return -EINVAL;
}

int oskr__conf_errorf(char **err, const struct oskr_conf *node,
		      const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vconf_errorf(err, node, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* What a node is, for "expected X, got Y": a quoted, shortened scalar
 * with unprintable bytes masked, or the kind of collection. */
const char *oskr__conf_describe(const struct oskr_conf *node, char *buf,
				size_t size)
{
	if (node->kind == OSKR_CONF_MAP)
		return "a mapping";
	if (node->kind == OSKR_CONF_SEQ)
		return "a sequence";
	if (node->scalar[0] == '\0')
		return "an empty value";
	if (size < 8)
		return "a scalar";
	size_t used = 0;
	buf[used++] = '\'';
	const char *text = node->scalar;
	size_t i;
	for (i = 0; text[i] && i < CONF_SHOWN_SCALAR && used + 5 < size; i++) {
		unsigned char c = (unsigned char)text[i];
		buf[used++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	if (text[i] && used + 5 < size) {
		memcpy(buf + used, "...", 3);
		used += 3;
	}
	buf[used++] = '\'';
	buf[used] = '\0';
	return buf;
}

static const char *node_path(const struct oskr_conf *node)
{
	return node->path[0] ? node->path : "top level";
}

/* ---- the tree ---- */

static void free_node(struct oskr_conf *node)
{
	if (!node)
		return;
	for (size_t i = 0; i < node->count; i++) {
		if (node->keys)
			free_node(node->keys[i]);
		free_node(node->values[i]);
	}
	free(node->keys);
	free(node->values);
	free(node->scalar);
	free(node->path);
	free(node);
}

void oskr__conf_free(struct oskr_conf *root)
{
	if (!root)
		return;
	/* The file name is shared by every node and owned by the root. */
	char *file = (char *)root->file;
	free_node(root);
	free(file);
}

const struct oskr_conf *oskr__conf_get(const struct oskr_conf *map,
				       const char *key)
{
	if (!map || map->kind != OSKR_CONF_MAP || !key)
		return NULL;
	for (size_t i = 0; i < map->count; i++)
		if (strcmp(map->keys[i]->scalar, key) == 0)
			return map->values[i];
	return NULL;
}

bool oskr__conf_is_null(const struct oskr_conf *node)
{
	if (!node)
		return true;
	if (node->kind != OSKR_CONF_SCALAR)
		return false;
	const char *text = node->scalar;
	return text[0] == '\0' || strcmp(text, "~") == 0 ||
	       strcmp(text, "null") == 0 || strcmp(text, "Null") == 0 ||
	       strcmp(text, "NULL") == 0;
}

struct builder {
	yaml_parser_t parser;
	const char *file;
	const char *text;
	size_t len;
	size_t node_count;
	char **err;
};

static int builder_error(struct builder *b, yaml_mark_t mark,
			 const char *fmt, ...) OSKR_PRINTF(3, 4);
static int builder_error(struct builder *b, yaml_mark_t mark,
			 const char *fmt, ...)
{
	char *message = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&message, fmt, ap) < 0)
		message = NULL;
	va_end(ap);
	oskr__errorf(b->err, "%s:%zu:%zu: %s", b->file, mark.line + 1,
		     mark.column + 1, message ? message : "out of memory");
	free(message);
	return -EINVAL;
}

/* libyaml's own error, as "file:line:col: problem (context at l:c)". */
static int syntax_error(struct builder *b)
{
	yaml_parser_t *p = &b->parser;
	const char *problem = p->problem ? p->problem : "invalid YAML";
	if (p->error == YAML_MEMORY_ERROR) {
		oskr__errorf(b->err, "%s: out of memory while parsing",
			     b->file);
		return -ENOMEM;
	}
	if (p->error == YAML_READER_ERROR) {
		/* Reader errors carry a byte offset, not a mark. */
		size_t line = 1, column = 1;
		for (size_t i = 0; i < p->problem_offset && i < b->len; i++) {
			if (b->text[i] == '\n') {
				line++;
				column = 1;
			} else {
				column++;
			}
		}
		if (p->problem_value >= 0)
			return oskr__errorf(b->err,
					    "%s:%zu:%zu: %s (byte 0x%02x)",
					    b->file, line, column, problem,
					    (unsigned)p->problem_value);
		return oskr__errorf(b->err, "%s:%zu:%zu: %s", b->file, line,
				    column, problem);
	}
	if (p->context)
		return oskr__errorf(b->err,
				    "%s:%zu:%zu: %s (%s at line %zu, column %zu)",
				    b->file, p->problem_mark.line + 1,
				    p->problem_mark.column + 1, problem,
				    p->context, p->context_mark.line + 1,
				    p->context_mark.column + 1);
	return oskr__errorf(b->err, "%s:%zu:%zu: %s", b->file,
			    p->problem_mark.line + 1,
			    p->problem_mark.column + 1, problem);
}

static int next_event(struct builder *b, yaml_event_t *event)
{
	if (!yaml_parser_parse(&b->parser, event))
		return syntax_error(b);
	return 0;
}

/* Plain data only: say so instead of silently dropping meaning. */
static int refuse_decorations(struct builder *b, const yaml_event_t *event,
			      const yaml_char_t *anchor, const yaml_char_t *tag)
{
	if (anchor)
		return builder_error(b, event->start_mark,
				     "YAML anchors (&%s) are not supported in oskr configuration",
				     (const char *)anchor);
	if (tag)
		return builder_error(b, event->start_mark,
				     "YAML tags (%s) are not supported in oskr configuration",
				     (const char *)tag);
	return 0;
}

static int new_node(struct builder *b, const yaml_event_t *event,
		    enum oskr__conf_kind kind, const char *path,
		    struct oskr_conf **out)
{
	if (++b->node_count > CONF_MAX_NODES)
		return builder_error(b, event->start_mark,
				     "too many YAML nodes (limit %d)",
				     CONF_MAX_NODES);
	struct oskr_conf *node = calloc(1, sizeof(*node));
	if (!node)
		goto err_nomem;
	node->kind = kind;
	node->file = b->file;
	node->line = (unsigned)event->start_mark.line + 1;
	node->column = (unsigned)event->start_mark.column + 1;
	node->path = strdup(path);
	if (!node->path)
		goto err_free;
	*out = node;
	return 0;

err_free:
	free(node);
err_nomem:
	oskr__errorf(b->err, "%s: out of memory", b->file);
	return -ENOMEM;
}

static int append_child(struct builder *b, struct oskr_conf *parent,
			size_t *capacity, struct oskr_conf *key,
			struct oskr_conf *value)
{
	if (parent->count == *capacity) {
		size_t grown = *capacity ? *capacity * 2 : 4;
		struct oskr_conf **values =
			realloc(parent->values, grown * sizeof(*values));
		if (!values)
			goto err_nomem;
		parent->values = values;
		if (parent->kind == OSKR_CONF_MAP) {
			struct oskr_conf **keys =
				realloc(parent->keys, grown * sizeof(*keys));
			if (!keys)
				goto err_nomem;
			parent->keys = keys;
		}
		*capacity = grown;
	}
	if (parent->kind == OSKR_CONF_MAP)
		parent->keys[parent->count] = key;
	parent->values[parent->count] = value;
	parent->count++;
	return 0;

err_nomem:
	free_node(key);
	free_node(value);
	oskr__errorf(b->err, "%s: out of memory", b->file);
	return -ENOMEM;
}

static char *child_path(const char *parent, const char *key, size_t index)
{
	char *path = NULL;
	int rc;
	if (key)
		rc = parent[0] ? asprintf(&path, "%s.%s", parent, key)
			       : asprintf(&path, "%s", key);
	else
		rc = asprintf(&path, "%s[%zu]", parent, index);
	return rc < 0 ? NULL : path;
}

static int compare_keys(const void *a, const void *b)
{
	const struct oskr_conf *const *left = a;
	const struct oskr_conf *const *right = b;
	int order = strcmp((*left)->scalar, (*right)->scalar);
	if (order)
		return order;
	/* Equal keys: document order, so the first one is the original. */
	if ((*left)->line != (*right)->line)
		return (*left)->line < (*right)->line ? -1 : 1;
	return (*left)->column < (*right)->column ? -1
	       : (*left)->column > (*right)->column;
}

static bool mark_before(const struct oskr_conf *a, const struct oskr_conf *b)
{
	return a->line < b->line || (a->line == b->line && a->column < b->column);
}

/* Sorting keeps this O(n log n) even for a hostile mapping. */
static int check_duplicate_keys(struct builder *b, const struct oskr_conf *map)
{
	if (map->count < 2)
		return 0;
	const struct oskr_conf **sorted = malloc(map->count * sizeof(*sorted));
	if (!sorted) {
		oskr__errorf(b->err, "%s: out of memory", b->file);
		return -ENOMEM;
	}
	memcpy(sorted, map->keys, map->count * sizeof(*sorted));
	qsort(sorted, map->count, sizeof(*sorted), compare_keys);
	const struct oskr_conf *first = NULL, *duplicate = NULL;
	for (size_t i = 1; i < map->count; i++) {
		if (strcmp(sorted[i - 1]->scalar, sorted[i]->scalar) != 0)
			continue;
		/* Report the duplicate that comes first in the file. */
		if (!duplicate || mark_before(sorted[i], duplicate)) {
			size_t j = i - 1;
			while (j > 0 && strcmp(sorted[j - 1]->scalar,
					       sorted[i]->scalar) == 0)
				j--;
			first = sorted[j];
			duplicate = sorted[i];
		}
	}
	int rc = 0;
	if (duplicate) {
		char shown[64];
		rc = oskr__conf_errorf(b->err, duplicate,
				       "duplicate key %s %s %s (first at line %u, column %u)",
				       oskr__conf_describe(duplicate, shown, sizeof(shown)),
				       map->path[0] ? "in" : "at",
				       node_path(map), first->line,
				       first->column);
	}
	free(sorted);
	return rc;
}

static int build_node(struct builder *b, yaml_event_t *event,
		      const char *path, unsigned depth,
		      struct oskr_conf **out);

static int build_scalar(struct builder *b, yaml_event_t *event,
			const char *path, struct oskr_conf **out)
{
	int rc = refuse_decorations(b, event, event->data.scalar.anchor,
				    event->data.scalar.tag);
	if (rc)
		return rc;
	const char *value = (const char *)event->data.scalar.value;
	size_t length = event->data.scalar.length;
	if (memchr(value, '\0', length))
		return builder_error(b, event->start_mark,
				     "NUL character in a scalar");
	struct oskr_conf *node = NULL;
	rc = new_node(b, event, OSKR_CONF_SCALAR, path, &node);
	if (rc)
		return rc;
	node->scalar = strndup(value, length);
	if (!node->scalar) {
		free_node(node);
		oskr__errorf(b->err, "%s: out of memory", b->file);
		return -ENOMEM;
	}
	*out = node;
	return 0;
}

static int build_sequence(struct builder *b, yaml_event_t *event,
			  const char *path, unsigned depth,
			  struct oskr_conf **out)
{
	int rc = refuse_decorations(b, event, event->data.sequence_start.anchor,
				    event->data.sequence_start.tag);
	if (rc)
		return rc;
	struct oskr_conf *seq = NULL;
	rc = new_node(b, event, OSKR_CONF_SEQ, path, &seq);
	if (rc)
		return rc;
	size_t capacity = 0;
	for (;;) {
		yaml_event_t item_event;
		rc = next_event(b, &item_event);
		if (rc)
			goto err_free;
		if (item_event.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&item_event);
			break;
		}
		char *item_path = child_path(path, NULL, seq->count);
		struct oskr_conf *item = NULL;
		rc = item_path ? build_node(b, &item_event, item_path,
					    depth + 1, &item)
			       : oskr__errorf(b->err, "%s: out of memory",
					      b->file);
		free(item_path);
		yaml_event_delete(&item_event);
		if (rc)
			goto err_free;
		rc = append_child(b, seq, &capacity, NULL, item);
		if (rc)
			goto err_free;
	}
	*out = seq;
	return 0;

err_free:
	free_node(seq);
	return rc;
}

static int build_mapping(struct builder *b, yaml_event_t *event,
			 const char *path, unsigned depth,
			 struct oskr_conf **out)
{
	int rc = refuse_decorations(b, event, event->data.mapping_start.anchor,
				    event->data.mapping_start.tag);
	if (rc)
		return rc;
	struct oskr_conf *map = NULL;
	rc = new_node(b, event, OSKR_CONF_MAP, path, &map);
	if (rc)
		return rc;
	size_t capacity = 0;
	for (;;) {
		yaml_event_t key_event;
		rc = next_event(b, &key_event);
		if (rc)
			goto err_free;
		if (key_event.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&key_event);
			break;
		}
		if (key_event.type != YAML_SCALAR_EVENT) {
			rc = key_event.type == YAML_ALIAS_EVENT
				     ? builder_error(b, key_event.start_mark,
						     "YAML aliases are not supported in oskr configuration")
				     : builder_error(b, key_event.start_mark,
						     "mapping keys must be plain scalars in %s",
						     path[0] ? path : "the top level");
			yaml_event_delete(&key_event);
			goto err_free;
		}
		char *value_path = child_path(
			path, (const char *)key_event.data.scalar.value, 0);
		if (!value_path) {
			yaml_event_delete(&key_event);
			rc = oskr__errorf(b->err, "%s: out of memory", b->file);
			goto err_free;
		}
		struct oskr_conf *key = NULL, *value = NULL;
		rc = build_scalar(b, &key_event, value_path, &key);
		yaml_event_delete(&key_event);
		if (rc)
			goto err_free_path;
		yaml_event_t value_event;
		rc = next_event(b, &value_event);
		if (rc)
			goto err_free_key;
		rc = build_node(b, &value_event, value_path, depth + 1, &value);
		yaml_event_delete(&value_event);
		if (rc)
			goto err_free_key;
		free(value_path);
		rc = append_child(b, map, &capacity, key, value);
		if (rc)
			goto err_free;
		continue;

err_free_key:
		free_node(key);
err_free_path:
		free(value_path);
		goto err_free;
	}
	rc = check_duplicate_keys(b, map);
	if (rc)
		goto err_free;
	*out = map;
	return 0;

err_free:
	free_node(map);
	return rc;
}

static int build_node(struct builder *b, yaml_event_t *event,
		      const char *path, unsigned depth,
		      struct oskr_conf **out)
{
	if (depth > CONF_MAX_DEPTH)
		return builder_error(b, event->start_mark,
				     "nested too deeply (limit %d levels)",
				     CONF_MAX_DEPTH);
	switch (event->type) {
	case YAML_SCALAR_EVENT:
		return build_scalar(b, event, path, out);
	case YAML_SEQUENCE_START_EVENT:
		return build_sequence(b, event, path, depth, out);
	case YAML_MAPPING_START_EVENT:
		return build_mapping(b, event, path, depth, out);
	case YAML_ALIAS_EVENT:
		return builder_error(b, event->start_mark,
				     "YAML aliases (*%s) are not supported in oskr configuration",
				     (const char *)event->data.alias.anchor);
	default:
		return builder_error(b, event->start_mark,
				     "unexpected YAML event");
	}
}

static int build_document(struct builder *b, struct oskr_conf **out)
{
	yaml_event_t event;
	int rc = next_event(b, &event);
	if (rc)
		return rc;
	/* STREAM-START carries nothing of interest. */
	yaml_event_delete(&event);
	rc = next_event(b, &event);
	if (rc)
		return rc;
	if (event.type == YAML_STREAM_END_EVENT) {
		yaml_event_delete(&event);
		return oskr__errorf(b->err,
				    "%s:1:1: empty configuration (expected a YAML mapping)",
				    b->file);
	}
	/* Only DOCUMENT-START can follow STREAM-START. */
	yaml_event_delete(&event);

	rc = next_event(b, &event);
	if (rc)
		return rc;
	struct oskr_conf *root = NULL;
	rc = build_node(b, &event, "", 0, &root);
	yaml_event_delete(&event);
	if (rc)
		return rc;

	rc = next_event(b, &event); /* DOCUMENT-END */
	if (rc)
		goto err_free;
	yaml_event_delete(&event);
	rc = next_event(b, &event);
	if (rc)
		goto err_free;
	if (event.type != YAML_STREAM_END_EVENT) {
		rc = builder_error(b, event.start_mark,
				   "a second YAML document; one configuration file holds one document");
		yaml_event_delete(&event);
		goto err_free;
	}
	yaml_event_delete(&event);
	*out = root;
	return 0;

err_free:
	free_node(root);
	return rc;
}

int oskr__conf_parse(const char *file, const char *text, size_t len,
		     struct oskr_conf **out, char **err)
{
	*out = NULL;
	char *file_copy = strdup(file ? file : "<config>");
	if (!file_copy) {
		oskr__errorf(err, "out of memory");
		return -ENOMEM;
	}
	int rc;
	if (len > CONF_MAX_TEXT) {
		rc = oskr__errorf(err, "%s: larger than %u bytes", file_copy,
				  CONF_MAX_TEXT);
		goto err_free_file;
	}
	struct builder b = {
		.file = file_copy,
		.text = text,
		.len = len,
		.err = err,
	};
	if (!yaml_parser_initialize(&b.parser)) {
		oskr__errorf(err, "%s: out of memory", file_copy);
		rc = -ENOMEM;
		goto err_free_file;
	}
	yaml_parser_set_input_string(&b.parser, (const unsigned char *)text,
				     len);
	struct oskr_conf *root = NULL;
	rc = build_document(&b, &root);
	yaml_parser_delete(&b.parser);
	if (rc)
		goto err_free_file;
	*out = root;
	return 0;

err_free_file:
	free(file_copy);
	return rc;
}

int oskr__conf_parse_file(const char *path, struct oskr_conf **out,
			  char **err)
{
	*out = NULL;
	FILE *stream = fopen(path, "rb");
	if (!stream) {
		int saved = errno;
		oskr__errorf(err, "%s: %s", path, strerror(saved));
		return -saved;
	}
	char *text = malloc(CONF_MAX_TEXT + 1);
	if (!text) {
		fclose(stream);
		oskr__errorf(err, "%s: out of memory", path);
		return -ENOMEM;
	}
	size_t len = fread(text, 1, CONF_MAX_TEXT + 1, stream);
	int rc = 0;
	if (ferror(stream))
		rc = oskr__errorf(err, "%s: read error", path);
	fclose(stream);
	if (!rc)
		rc = oskr__conf_parse(path, text, len, out, err);
	free(text);
	return rc;
}

/* ---- typed readers ---- */

static bool parse_decimal(const char *text, uint64_t *out)
{
	uint64_t value = 0;
	if (!*text)
		return false;
	for (; *text; text++) {
		if (*text < '0' || *text > '9')
			return false;
		unsigned digit = (unsigned)(*text - '0');
		if (value > (UINT64_MAX - digit) / 10)
			return false;
		value = value * 10 + digit;
	}
	*out = value;
	return true;
}

static void describe_range(char *buf, size_t size, uint64_t min,
			   uint64_t max)
{
	if (max == UINT64_MAX || max == UINT32_MAX) {
		if (min == 0)
			snprintf(buf, size, "a non-negative integer");
		else
			snprintf(buf, size, "an integer >= %" PRIu64, min);
	} else {
		snprintf(buf, size, "an integer in [%" PRIu64 ", %" PRIu64 "]",
			 min, max);
	}
}

int oskr__conf_node_u64(const struct oskr_conf *node, uint64_t min,
			uint64_t max, uint64_t *out, char **err)
{
	uint64_t value = 0;
	if (node->kind == OSKR_CONF_SCALAR && parse_decimal(node->scalar, &value) &&
	    value >= min && value <= max) {
		*out = value;
		return 0;
	}
	char range[96], shown[64];
	describe_range(range, sizeof(range), min, max);
	return oskr__conf_errorf(err, node, "%s: expected %s, got %s",
				 node_path(node), range,
				 oskr__conf_describe(node, shown, sizeof(shown)));
}

/* Absent and YAML null read as "use the default"; a non-mapping parent
 * is an error of the parent. */
static int lookup(const struct oskr_conf *conf, const char *key,
		  const struct oskr_conf **out, char **err)
{
	*out = NULL;
	if (oskr__conf_is_null(conf))
		return 0;
	if (conf->kind != OSKR_CONF_MAP) {
		char shown[64];
		return oskr__conf_errorf(err, conf,
					 "%s: expected a mapping, got %s",
					 node_path(conf),
					 oskr__conf_describe(conf, shown, sizeof(shown)));
	}
	const struct oskr_conf *value = oskr__conf_get(conf, key);
	if (!oskr__conf_is_null(value))
		*out = value;
	return 0;
}

int oskr__conf_read_u64(const struct oskr_conf *conf, const char *key,
			uint64_t min, uint64_t max, uint64_t dflt,
			uint64_t *out, char **err)
{
	const struct oskr_conf *value = NULL;
	int rc = lookup(conf, key, &value, err);
	if (rc)
		return rc;
	if (!value) {
		*out = dflt;
		return 0;
	}
	return oskr__conf_node_u64(value, min, max, out, err);
}

int oskr__conf_read_bool(const struct oskr_conf *conf, const char *key,
			 bool dflt, bool *out, char **err)
{
	static const char *const truthy[] = { "true", "yes", "on" };
	static const char *const falsy[] = { "false", "no", "off" };
	const struct oskr_conf *value = NULL;
	int rc = lookup(conf, key, &value, err);
	if (rc)
		return rc;
	if (!value) {
		*out = dflt;
		return 0;
	}
	if (value->kind == OSKR_CONF_SCALAR) {
		for (size_t i = 0; i < 3; i++) {
			if (strcasecmp(value->scalar, truthy[i]) == 0) {
				*out = true;
				return 0;
			}
			if (strcasecmp(value->scalar, falsy[i]) == 0) {
				*out = false;
				return 0;
			}
		}
	}
	char shown[64];
	return oskr__conf_errorf(err, value,
				 "%s: expected a boolean (true or false), got %s",
				 value->path,
				 oskr__conf_describe(value, shown, sizeof(shown)));
}

/* "250", "250ms", "2s", "1.5s": whole milliseconds only. */
static bool parse_duration_ms(const char *text, uint64_t *out)
{
	uint64_t whole = 0;
	const char *cursor = text;
	if (*cursor < '0' || *cursor > '9')
		return false;
	for (; *cursor >= '0' && *cursor <= '9'; cursor++) {
		unsigned digit = (unsigned)(*cursor - '0');
		if (whole > (UINT64_MAX / 1000 - 1 - digit) / 10)
			return false;
		whole = whole * 10 + digit;
	}
	const char *fraction = NULL;
	size_t fraction_len = 0;
	if (*cursor == '.') {
		fraction = ++cursor;
		while (*cursor >= '0' && *cursor <= '9')
			cursor++;
		fraction_len = (size_t)(cursor - fraction);
		if (fraction_len == 0)
			return false;
	}
	unsigned scale_digits; /* decimal digits of ms per unit */
	if (strcmp(cursor, "") == 0 || strcmp(cursor, "ms") == 0)
		scale_digits = 0;
	else if (strcmp(cursor, "s") == 0)
		scale_digits = 3;
	else
		return false;
	uint64_t value = whole;
	for (unsigned i = 0; i < scale_digits; i++) {
		unsigned digit = i < fraction_len
					 ? (unsigned)(fraction[i] - '0')
					 : 0;
		value = value * 10 + digit;
	}
	/* Anything finer than a millisecond must be zero. */
	for (size_t i = scale_digits; i < fraction_len; i++)
		if (fraction[i] != '0')
			return false;
	*out = value;
	return true;
}

int oskr__conf_read_ms(const struct oskr_conf *conf, const char *key,
		       uint64_t min, uint64_t max, uint64_t dflt,
		       uint64_t *out, char **err)
{
	const struct oskr_conf *value = NULL;
	int rc = lookup(conf, key, &value, err);
	if (rc)
		return rc;
	if (!value) {
		*out = dflt;
		return 0;
	}
	uint64_t ms = 0;
	if (value->kind == OSKR_CONF_SCALAR &&
	    parse_duration_ms(value->scalar, &ms) && ms >= min && ms <= max) {
		*out = ms;
		return 0;
	}
	char shown[64];
	if (max == UINT64_MAX)
		return oskr__conf_errorf(err, value,
					 "%s: expected a duration >= %" PRIu64
					 "ms (like 250ms or 1.5s), got %s",
					 value->path, min,
					 oskr__conf_describe(value, shown, sizeof(shown)));
	return oskr__conf_errorf(err, value,
				 "%s: expected a duration in [%" PRIu64
				 "ms, %" PRIu64
				 "ms] (like 250ms or 1.5s), got %s",
				 value->path, min, max,
				 oskr__conf_describe(value, shown, sizeof(shown)));
}

int oskr__conf_read_string(const struct oskr_conf *conf, const char *key,
			   const char *dflt, const char **out, char **err)
{
	const struct oskr_conf *value = NULL;
	int rc = lookup(conf, key, &value, err);
	if (rc)
		return rc;
	if (!value) {
		*out = dflt;
		return 0;
	}
	if (value->kind != OSKR_CONF_SCALAR) {
		char shown[64];
		return oskr__conf_errorf(err, value,
					 "%s: expected a string, got %s",
					 value->path,
					 oskr__conf_describe(value, shown, sizeof(shown)));
	}
	*out = value->scalar;
	return 0;
}

int oskr__conf_verify_keys(const struct oskr_conf *conf,
			   const char *const *allowed, char **err)
{
	if (oskr__conf_is_null(conf))
		return 0;
	if (conf->kind != OSKR_CONF_MAP) {
		char shown[64];
		return oskr__conf_errorf(err, conf,
					 "%s: expected a mapping, got %s",
					 node_path(conf),
					 oskr__conf_describe(conf, shown, sizeof(shown)));
	}
	for (size_t i = 0; i < conf->count; i++) {
		const struct oskr_conf *key = conf->keys[i];
		bool known = false;
		for (size_t j = 0; allowed && allowed[j]; j++)
			if (strcmp(key->scalar, allowed[j]) == 0)
				known = true;
		if (known)
			continue;
		char expected[512] = "";
		size_t used = 0;
		for (size_t j = 0; allowed && allowed[j]; j++) {
			int n = snprintf(expected + used,
					 sizeof(expected) - used, "%s%s",
					 j ? ", " : "", allowed[j]);
			if (n < 0 || (size_t)n >= sizeof(expected) - used)
				break;
			used += (size_t)n;
		}
		char shown[64];
		const char *where = conf->path[0] ? "in" : "at";
		if (used == 0)
			return oskr__conf_errorf(err, key,
						 "unknown key %s %s %s (no keys are expected here)",
						 oskr__conf_describe(key, shown, sizeof(shown)),
						 where, node_path(conf));
		return oskr__conf_errorf(err, key,
					 "unknown key %s %s %s (expected one of %s)",
					 oskr__conf_describe(key, shown, sizeof(shown)),
					 where, node_path(conf), expected);
	}
	return 0;
}

/* ---- the plugin-facing accessors: log, and remember for
 * --check-config ---- */

static int report(int rc, char *err)
{
	if (rc && err) {
		snprintf(last_error, sizeof(last_error), "%s", err);
		oskr__log(OSKR_LOG_ERROR, "%s", err);
	}
	free(err);
	return rc;
}

int oskr__conf_u64(const struct oskr_conf *conf, const char *key,
		   uint64_t min, uint64_t max, uint64_t dflt, uint64_t *out)
{
	char *err = NULL;
	int rc = oskr__conf_read_u64(conf, key, min, max, dflt, out, &err);
	return report(rc, err);
}

int oskr__conf_bool(const struct oskr_conf *conf, const char *key,
		    bool dflt, bool *out)
{
	char *err = NULL;
	int rc = oskr__conf_read_bool(conf, key, dflt, out, &err);
	return report(rc, err);
}

int oskr__conf_ms(const struct oskr_conf *conf, const char *key,
		  uint64_t min, uint64_t max, uint64_t dflt, uint64_t *out)
{
	char *err = NULL;
	int rc = oskr__conf_read_ms(conf, key, min, max, dflt, out, &err);
	return report(rc, err);
}

int oskr__conf_check_keys(const struct oskr_conf *conf,
			  const char *const *allowed)
{
	char *err = NULL;
	int rc = oskr__conf_verify_keys(conf, allowed, &err);
	return report(rc, err);
}

int oskr__conf_string(const struct oskr_conf *conf, const char *key,
		      const char *dflt, const char **out)
{
	char *err = NULL;
	int rc = oskr__conf_read_string(conf, key, dflt, out, &err);
	return report(rc, err);
}
