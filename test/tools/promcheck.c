/* SPDX-License-Identifier: MIT */
/*
 * promcheck: a strict checker of the Prometheus text exposition format
 * 0.0.4, for tests (promtool is not always installable).
 *
 *   promcheck [FILE]        (stdin without FILE)
 *
 * Checks the syntax (metric and label names, label value escapes, float
 * values, optional integer timestamps, the final line feed) and the
 * structure: every family has one HELP and one TYPE before its samples,
 * a family's lines are contiguous, no series appears twice, counters are
 * named *_total and never negative, histograms have le-labelled buckets in
 * increasing order with non-decreasing counts ending in le="+Inf", whose
 * count equals _count, and a _sum. Prints every problem with its line
 * number; exits 0 when there is none.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUT (64u << 20)
#define MAX_LABELS 32
#define MAX_ERRORS 50

enum family_type { TYPE_NONE, COUNTER, GAUGE, HISTOGRAM, SUMMARY, UNTYPED };

struct family {
	char *name;
	enum family_type type;
	bool has_help, has_type, has_samples;
};

struct label {
	char name[128];
	char value[512];
};

/* one histogram series group: the family and labels other than le */
struct histogram_group {
	char *key;
	unsigned first_line;
	double last_le;
	double last_count;
	unsigned buckets;
	bool has_inf, has_sum, has_count;
	double inf_count, count;
};

static unsigned errors;
static struct family *families;
static size_t family_count, family_capacity;
static struct family *current;
static char **series;
static size_t series_count, series_capacity;
static struct histogram_group *groups;
static size_t group_count, group_capacity;
static size_t sample_count;

static void problem(unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void problem(unsigned line, const char *fmt, ...)
{
	errors++;
	if (errors > MAX_ERRORS)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "promcheck: line %u: ", line);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void *grow(void *array, size_t *capacity, size_t count, size_t size)
{
	if (count < *capacity)
		return array;
	size_t grown = *capacity ? *capacity * 2 : 64;
	void *bigger = realloc(array, grown * size);
	if (!bigger) {
		fprintf(stderr, "promcheck: out of memory\n");
		exit(2);
	}
	*capacity = grown;
	return bigger;
}

static bool metric_name_ok(const char *name)
{
	if (!(isalpha((unsigned char)name[0]) || name[0] == '_' ||
	      name[0] == ':'))
		return false;
	for (const char *p = name + 1; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_' || *p == ':'))
			return false;
	return true;
}

static bool label_name_ok(const char *name)
{
	if (!(isalpha((unsigned char)name[0]) || name[0] == '_'))
		return false;
	for (const char *p = name + 1; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_'))
			return false;
	return true;
}

/* Go's strconv.ParseFloat as Prometheus uses it, plus the spellings of
 * infinities and NaN the format allows. */
static bool parse_value(const char *text, double *out)
{
	if (!strcmp(text, "+Inf") || !strcmp(text, "Inf")) {
		*out = INFINITY;
		return true;
	}
	if (!strcmp(text, "-Inf")) {
		*out = -INFINITY;
		return true;
	}
	if (!strcmp(text, "NaN")) {
		*out = NAN;
		return true;
	}
	if (!text[0])
		return false;
	for (const char *p = text; *p; p++)
		if (!(isdigit((unsigned char)*p) || strchr("+-.eE", *p)))
			return false;
	char *end;
	errno = 0;
	*out = strtod(text, &end);
	return *end == '\0' && errno != ERANGE;
}

static bool parse_timestamp(const char *text)
{
	const char *p = text;
	if (*p == '-')
		p++;
	if (!*p)
		return false;
	for (; *p; p++)
		if (!isdigit((unsigned char)*p))
			return false;
	return true;
}

static struct family *find_family(const char *name)
{
	for (size_t i = 0; i < family_count; i++)
		if (!strcmp(families[i].name, name))
			return &families[i];
	return NULL;
}

static struct family *add_family(const char *name)
{
	families = grow(families, &family_capacity, family_count,
			sizeof(*families));
	struct family *f = &families[family_count++];
	*f = (struct family){.name = strdup(name)};
	return f;
}

/* Switch to family @p name, checking contiguity. */
static struct family *enter_family(const char *name, unsigned line)
{
	if (current && !strcmp(current->name, name))
		return current;
	struct family *f = find_family(name);
	if (f) {
		problem(line,
			"family %s continues after other families (its lines "
			"must be contiguous)",
			name);
		current = f;
		return f;
	}
	current = add_family(name);
	return current;
}

static void descriptor(char *line_text, unsigned line)
{
	/* "# HELP name text" or "# TYPE name type"; other comments pass */
	char *p = line_text + 1;
	while (*p == ' ' || *p == '\t')
		p++;
	bool help = !strncmp(p, "HELP", 4) && (p[4] == ' ' || p[4] == '\t');
	bool type = !strncmp(p, "TYPE", 4) && (p[4] == ' ' || p[4] == '\t');
	if (!help && !type)
		return;
	p += 4;
	while (*p == ' ' || *p == '\t')
		p++;
	char name[256];
	size_t n = 0;
	while (*p && *p != ' ' && *p != '\t' && n + 1 < sizeof(name))
		name[n++] = *p++;
	name[n] = '\0';
	if (!metric_name_ok(name)) {
		problem(line, "bad metric name '%s' in %s", name,
			help ? "HELP" : "TYPE");
		return;
	}
	struct family *f = enter_family(name, line);
	while (*p == ' ' || *p == '\t')
		p++;
	if (f->has_samples)
		problem(line, "%s for %s after its samples",
			help ? "HELP" : "TYPE", name);
	if (help) {
		if (f->has_help)
			problem(line, "second HELP for %s", name);
		f->has_help = true;
		for (char *q = p; *q; q++)
			if (*q == '\\' && q[1] != '\\' && q[1] != 'n')
				problem(line, "bad escape '\\%c' in HELP",
					q[1]);
			else if (*q == '\\')
				q++;
		return;
	}
	if (f->has_type)
		problem(line, "second TYPE for %s", name);
	f->has_type = true;
	static const struct {
		const char *name;
		enum family_type type;
	} types[] = {{"counter", COUNTER},     {"gauge", GAUGE},
		     {"histogram", HISTOGRAM}, {"summary", SUMMARY},
		     {"untyped", UNTYPED}};
	char *end = p + strlen(p);
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (!strcmp(p, types[i].name)) {
			f->type = types[i].type;
			if (f->type == COUNTER &&
			    (strlen(name) < 6 ||
			     strcmp(name + strlen(name) - 6, "_total")))
				problem(line,
					"counter %s should be named *_total",
					name);
			return;
		}
	}
	problem(line, "unknown type '%s' for %s", p, name);
}

static int compare_labels(const void *a, const void *b)
{
	return strcmp(((const struct label *)a)->name,
		      ((const struct label *)b)->name);
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n > m && !strcmp(s + n - m, suffix);
}

static struct histogram_group *group_for(const char *key, unsigned line)
{
	for (size_t i = 0; i < group_count; i++)
		if (!strcmp(groups[i].key, key))
			return &groups[i];
	groups = grow(groups, &group_capacity, group_count, sizeof(*groups));
	struct histogram_group *g = &groups[group_count++];
	*g = (struct histogram_group){.key = strdup(key),
				      .first_line = line,
				      .last_le = -INFINITY};
	return g;
}

static void sample(char *text, unsigned line)
{
	sample_count++;
	char *p = text;
	char name[256];
	size_t n = 0;
	while (*p && *p != '{' && *p != ' ' && *p != '\t' && n + 1 < sizeof(name))
		name[n++] = *p++;
	name[n] = '\0';
	if (!metric_name_ok(name)) {
		problem(line, "bad metric name '%s'", name);
		return;
	}
	struct label labels[MAX_LABELS];
	size_t label_count = 0;
	if (*p == '{') {
		p++;
		for (;;) {
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == '}') {
				p++;
				break;
			}
			if (label_count == MAX_LABELS) {
				problem(line, "more than %d labels", MAX_LABELS);
				return;
			}
			struct label *l = &labels[label_count];
			size_t k = 0;
			while (*p && *p != '=' && *p != ' ' &&
			       k + 1 < sizeof(l->name))
				l->name[k++] = *p++;
			l->name[k] = '\0';
			while (*p == ' ' || *p == '\t')
				p++;
			if (!label_name_ok(l->name) || !strncmp(l->name, "__", 2)) {
				problem(line, "bad label name '%s'", l->name);
				return;
			}
			if (*p++ != '=' || *p++ != '"') {
				problem(line, "expected =\" after label %s",
					l->name);
				return;
			}
			size_t v = 0;
			while (*p && *p != '"') {
				if (*p == '\\') {
					if (p[1] != '\\' && p[1] != '"' &&
					    p[1] != 'n') {
						problem(line,
							"bad escape in value of "
							"label %s",
							l->name);
						return;
					}
					p++;
				}
				if (v + 1 < sizeof(l->value))
					l->value[v++] = *p;
				p++;
			}
			l->value[v] = '\0';
			if (*p++ != '"') {
				problem(line, "unterminated value of label %s",
					l->name);
				return;
			}
			label_count++;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == ',') {
				p++;
				continue;
			}
			if (*p == '}') {
				p++;
				break;
			}
			problem(line, "expected , or } after label %s",
				l->name);
			return;
		}
	}
	if (*p != ' ' && *p != '\t') {
		problem(line, "expected a blank before the value");
		return;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	char *value_text = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	char *rest = p;
	if (*rest) {
		*rest++ = '\0';
		while (*rest == ' ' || *rest == '\t')
			rest++;
	}
	double value;
	if (!parse_value(value_text, &value)) {
		problem(line, "bad value '%s'", value_text);
		return;
	}
	if (*rest) {
		char *end = rest + strlen(rest);
		while (end > rest && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (!parse_timestamp(rest)) {
			problem(line, "bad timestamp '%s'", rest);
			return;
		}
	}
	qsort(labels, label_count, sizeof(labels[0]), compare_labels);
	for (size_t i = 1; i < label_count; i++)
		if (!strcmp(labels[i].name, labels[i - 1].name))
			problem(line, "label %s given twice", labels[i].name);

	/* which family: a histogram's or summary's suffixed series belong
	 * to the family without the suffix */
	char family_name[256];
	snprintf(family_name, sizeof(family_name), "%s", name);
	const char *suffix = NULL;
	static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
	for (size_t i = 0; i < 3; i++) {
		if (!ends_with(name, suffixes[i]))
			continue;
		char base[256];
		snprintf(base, sizeof(base), "%.*s",
			 (int)(strlen(name) - strlen(suffixes[i])), name);
		struct family *f = find_family(base);
		if (f && (f->type == HISTOGRAM ||
			  (f->type == SUMMARY && i > 0))) {
			snprintf(family_name, sizeof(family_name), "%s", base);
			suffix = suffixes[i];
		}
	}
	struct family *f = enter_family(family_name, line);
	f->has_samples = true;
	if (!f->has_type)
		problem(line, "sample of %s without a TYPE line", family_name);
	if (!f->has_help)
		problem(line, "sample of %s without a HELP line", family_name);
	if (f->type == HISTOGRAM && !suffix)
		problem(line, "histogram %s: sample without _bucket/_sum/_count",
			family_name);
	if (f->type == COUNTER && (isnan(value) || value < 0))
		problem(line, "counter %s has value %s", name, value_text);

	/* duplicate series */
	char key[4096];
	size_t used = (size_t)snprintf(key, sizeof(key), "%s{", name);
	for (size_t i = 0; i < label_count && used < sizeof(key); i++)
		used += (size_t)snprintf(key + used, sizeof(key) - used,
					 "%s=\"%s\",", labels[i].name,
					 labels[i].value);
	series = grow(series, &series_capacity, series_count, sizeof(*series));
	series[series_count++] = strdup(key);

	if (f->type != HISTOGRAM || !suffix)
		return;
	/* histogram structure, per label set without le */
	char group_key[4096];
	used = (size_t)snprintf(group_key, sizeof(group_key), "%s{",
				family_name);
	const char *le = NULL;
	for (size_t i = 0; i < label_count && used < sizeof(group_key); i++) {
		if (!strcmp(labels[i].name, "le")) {
			le = labels[i].value;
			continue;
		}
		used += (size_t)snprintf(group_key + used,
					 sizeof(group_key) - used,
					 "%s=\"%s\",", labels[i].name,
					 labels[i].value);
	}
	struct histogram_group *g = group_for(group_key, line);
	if (!strcmp(suffix, "_bucket")) {
		double bound;
		if (!le) {
			problem(line, "bucket of %s without an le label",
				family_name);
			return;
		}
		if (!parse_value(le, &bound) || isnan(bound)) {
			problem(line, "bad le=\"%s\"", le);
			return;
		}
		if (g->has_sum || g->has_count)
			problem(line, "bucket after _sum/_count of %s",
				group_key);
		if (g->buckets && bound <= g->last_le)
			problem(line, "le=\"%s\" is not above the previous "
				      "bucket's",
				le);
		if (g->buckets && value < g->last_count)
			problem(line,
				"bucket count %s is below the previous bucket's "
				"(buckets are cumulative)",
				value_text);
		g->buckets++;
		g->last_le = bound;
		g->last_count = value;
		if (isinf(bound) && bound > 0) {
			g->has_inf = true;
			g->inf_count = value;
		}
	} else if (!strcmp(suffix, "_sum")) {
		if (le)
			problem(line, "_sum with an le label");
		g->has_sum = true;
	} else {
		if (le)
			problem(line, "_count with an le label");
		g->has_count = true;
		g->count = value;
	}
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	FILE *in = stdin;
	if (argc > 2) {
		fprintf(stderr, "usage: promcheck [FILE]\n");
		return 2;
	}
	if (argc == 2 && !(in = fopen(argv[1], "r"))) {
		fprintf(stderr, "promcheck: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	char *text = malloc(MAX_INPUT + 1);
	if (!text)
		return 2;
	size_t len = fread(text, 1, MAX_INPUT + 1, in);
	if (len > MAX_INPUT) {
		fprintf(stderr, "promcheck: input larger than %u bytes\n",
			MAX_INPUT);
		free(text);
		return 2;
	}
	text[len] = '\0';
	if (len == 0) {
		fprintf(stderr, "promcheck: empty input\n");
		free(text);
		return 1;
	}
	if (strlen(text) != len)
		problem(0, "NUL byte in the input");
	if (text[len - 1] != '\n')
		problem(0, "the last line does not end with a line feed");

	unsigned line = 0;
	for (char *p = text, *next; p && *p; p = next) {
		line++;
		next = strchr(p, '\n');
		if (next)
			*next++ = '\0';
		if (strchr(p, '\r'))
			problem(line, "carriage return in a line");
		if (!*p)
			continue;
		if (*p == '#')
			descriptor(p, line);
		else
			sample(p, line);
	}
	for (size_t i = 0; i < family_count; i++)
		if (!families[i].has_samples)
			problem(line, "family %s has no samples",
				families[i].name);
	qsort(series, series_count, sizeof(*series), compare_strings);
	for (size_t i = 1; i < series_count; i++)
		if (!strcmp(series[i], series[i - 1]))
			problem(0, "series %s appears twice", series[i]);
	for (size_t i = 0; i < group_count; i++) {
		struct histogram_group *g = &groups[i];
		if (!g->has_inf)
			problem(g->first_line, "histogram %s has no le=\"+Inf\" "
					       "bucket",
				g->key);
		if (!g->has_count || !g->has_sum)
			problem(g->first_line,
				"histogram %s lacks _sum or _count", g->key);
		if (g->has_inf && g->has_count && g->inf_count != g->count)
			problem(g->first_line,
				"histogram %s: +Inf bucket %.17g differs from "
				"_count %.17g",
				g->key, g->inf_count, g->count);
		if (g->has_inf && g->last_le != INFINITY)
			problem(g->first_line,
				"histogram %s: +Inf is not the last bucket",
				g->key);
	}
	for (size_t i = 0; i < family_count; i++)
		free(families[i].name);
	for (size_t i = 0; i < series_count; i++)
		free(series[i]);
	for (size_t i = 0; i < group_count; i++)
		free(groups[i].key);
	free(families);
	free(series);
	free(groups);
	free(text);
	if (in != stdin)
		fclose(in);
	if (errors) {
		fprintf(stderr, "promcheck: %u problem(s)\n", errors);
		return 1;
	}
	printf("promcheck: OK (%zu families, %zu samples)\n", family_count,
	       sample_count);
	return 0;
}
