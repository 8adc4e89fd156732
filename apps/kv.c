/* SPDX-License-Identifier: MIT */
/*
 * The kv application: an ordered key-value store with get, put, del and
 * scan (encoding in include/oskr/kv.h).
 *
 * The store is a treap ordered by key (memcmp, shorter prefix first). Node
 * priorities come from a PRNG with a fixed seed, independent of the keys,
 * so clients cannot steer the tree shape with chosen keys and two replicas
 * that execute the same ops build the same tree.
 *
 * Snapshot format (deterministic: equal states give equal bytes):
 *   "OSKRKV01" | u64 entry_count | entries in ascending key order, each
 *   u16 key_len | key | u32 value_len | value
 * Restore checks every length, the limits and the strict key order, and
 * only then replaces the state.
 */
#include "app.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <oskr/kv.h>

#define KV_SNAPSHOT_MAGIC "OSKRKV01"
#define KV_SNAPSHOT_MAGIC_LEN 8

struct kv_node {
	struct kv_node *left, *right;
	uint64_t priority;
	uint16_t key_len;
	uint32_t value_len;
	uint8_t *value; /* points into the same allocation, after the key */
	uint8_t key[];
};

struct kv_app {
	struct kv_node *root;
	uint64_t entry_count;
	uint64_t priority_state; /* splitmix64 */
};

static uint64_t next_priority(struct kv_app *kv)
{
	uint64_t z = (kv->priority_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int key_compare(const uint8_t *a, size_t a_len, const uint8_t *b,
		       size_t b_len)
{
	size_t common = a_len < b_len ? a_len : b_len;
	int c = common ? memcmp(a, b, common) : 0;
	if (c)
		return c;
	return (a_len > b_len) - (a_len < b_len);
}

static struct kv_node *node_new(struct kv_app *kv, const uint8_t *key,
				size_t key_len, const uint8_t *value,
				size_t value_len)
{
	struct kv_node *node = malloc(sizeof(*node) + key_len + value_len);
	if (!node)
		return NULL;
	node->left = node->right = NULL;
	node->priority = next_priority(kv);
	node->key_len = (uint16_t)key_len;
	node->value_len = (uint32_t)value_len;
	node->value = node->key + key_len;
	if (key_len)
		memcpy(node->key, key, key_len);
	if (value_len)
		memcpy(node->value, value, value_len);
	return node;
}

static void tree_free(struct kv_node *node)
{
	/* Iterative: a degenerate tree must not overflow the stack. */
	while (node) {
		if (node->left) {
			struct kv_node *left = node->left;
			node->left = left->right;
			left->right = node;
			node = left;
			continue;
		}
		struct kv_node *right = node->right;
		free(node);
		node = right;
	}
}

/* Split @p node into keys < key (*less) and keys >= key (*rest). */
static void tree_split(struct kv_node *node, const uint8_t *key,
		       size_t key_len, struct kv_node **less,
		       struct kv_node **rest)
{
	struct kv_node **less_tail = less, **rest_tail = rest;
	while (node) {
		if (key_compare(node->key, node->key_len, key, key_len) < 0) {
			*less_tail = node;
			less_tail = &node->right;
			node = node->right;
		} else {
			*rest_tail = node;
			rest_tail = &node->left;
			node = node->left;
		}
	}
	*less_tail = NULL;
	*rest_tail = NULL;
}

/* Merge two treaps where every key of @p a is below every key of @p b. */
static struct kv_node *tree_merge(struct kv_node *a, struct kv_node *b)
{
	struct kv_node *root = NULL, **tail = &root;
	while (a && b) {
		if (a->priority >= b->priority) {
			*tail = a;
			tail = &a->right;
			a = a->right;
		} else {
			*tail = b;
			tail = &b->left;
			b = b->left;
		}
	}
	*tail = a ? a : b;
	return root;
}

static struct kv_node **tree_find(struct kv_node **link, const uint8_t *key,
				  size_t key_len)
{
	while (*link) {
		int c = key_compare(key, key_len, (*link)->key,
				    (*link)->key_len);
		if (c == 0)
			return link;
		link = c < 0 ? &(*link)->left : &(*link)->right;
	}
	return link;
}

/* Insert @p node (key not present) by priority: walk down to where it
 * belongs, split the subtree there by its key. */
static void tree_insert(struct kv_node **link, struct kv_node *node)
{
	while (*link && (*link)->priority >= node->priority) {
		int c = key_compare(node->key, node->key_len, (*link)->key,
				    (*link)->key_len);
		link = c < 0 ? &(*link)->left : &(*link)->right;
	}
	tree_split(*link, node->key, node->key_len, &node->left, &node->right);
	*link = node;
}

static int kv_create(void **out, const struct oskr_conf *options, char **err)
{
	struct kv_app *kv = calloc(1, sizeof(*kv));
	if (!kv)
		return -ENOMEM;
	kv->priority_state = 0x6f736b72u; /* fixed: replicas build equal trees */
	*out = kv;
	return 0;
}

static void kv_destroy(void *app)
{
	struct kv_app *kv = app;
	if (!kv)
		return;
	tree_free(kv->root);
	free(kv);
}

static int result_status(void *result, size_t capacity, size_t *result_len,
			 enum oskr_kv_status status)
{
	if (capacity < 1)
		return -ENOSPC;
	((uint8_t *)result)[0] = (uint8_t)status;
	*result_len = 1;
	return 0;
}

static int kv_get(struct kv_app *kv, const struct oskr_kv_op *op,
		  uint8_t *result, size_t capacity, size_t *result_len)
{
	struct kv_node *node = *tree_find(&kv->root, op->key, op->key_len);
	if (!node)
		return result_status(result, capacity, result_len,
				     OSKR_KV_NOT_FOUND);
	if (capacity < 1 || capacity - 1 < node->value_len)
		return -ENOSPC;
	result[0] = OSKR_KV_OK;
	if (node->value_len)
		memcpy(result + 1, node->value, node->value_len);
	*result_len = 1 + (size_t)node->value_len;
	return 0;
}

static int kv_put(struct kv_app *kv, const struct oskr_kv_op *op,
		  uint8_t *result, size_t capacity, size_t *result_len)
{
	if (capacity < 1)
		return -ENOSPC; /* before any change: the op did not run */
	if (op->key_len > OSKR_KV_MAX_KEY || op->value_len > OSKR_KV_MAX_VALUE)
		return result_status(result, capacity, result_len,
				     OSKR_KV_TOO_LARGE);
	struct kv_node **link = tree_find(&kv->root, op->key, op->key_len);
	struct kv_node *old = *link;
	if (old && old->value_len == op->value_len) {
		if (op->value_len)
			memcpy(old->value, op->value, op->value_len);
		return result_status(result, capacity, result_len, OSKR_KV_OK);
	}
	struct kv_node *node = node_new(kv, op->key, op->key_len, op->value,
					op->value_len);
	if (!node)
		return -ENOMEM;
	if (old) {
		/* Same key, new size: take the old node's place and shape. */
		node->left = old->left;
		node->right = old->right;
		node->priority = old->priority;
		*link = node;
		free(old);
	} else {
		tree_insert(&kv->root, node);
		kv->entry_count++;
	}
	return result_status(result, capacity, result_len, OSKR_KV_OK);
}

static int kv_del(struct kv_app *kv, const struct oskr_kv_op *op,
		  uint8_t *result, size_t capacity, size_t *result_len)
{
	if (capacity < 1)
		return -ENOSPC;
	struct kv_node **link = tree_find(&kv->root, op->key, op->key_len);
	struct kv_node *node = *link;
	if (!node)
		return result_status(result, capacity, result_len,
				     OSKR_KV_NOT_FOUND);
	*link = tree_merge(node->left, node->right);
	free(node);
	kv->entry_count--;
	return result_status(result, capacity, result_len, OSKR_KV_OK);
}

/* Smallest node with key >= @p key (or > @p key when @p strictly). */
static struct kv_node *tree_lower_bound(struct kv_node *node,
					const uint8_t *key, size_t key_len,
					bool strictly)
{
	struct kv_node *best = NULL;
	while (node) {
		int c = key_compare(node->key, node->key_len, key, key_len);
		if (c > 0 || (c == 0 && !strictly)) {
			best = node;
			node = node->left;
		} else {
			node = node->right;
		}
	}
	return best;
}

static int kv_scan(struct kv_app *kv, const struct oskr_kv_op *op,
		   uint8_t *result, size_t capacity, size_t *result_len)
{
	if (capacity < 1)
		return -ENOSPC;
	result[0] = OSKR_KV_OK;
	size_t used = 1;
	uint32_t items = 0;
	/* Each step finds the successor from the root: O(log n) per item
	 * and no stack whose depth could depend on the tree's shape (which
	 * differs between a replica and one restored from its snapshot). */
	struct kv_node *node =
		tree_lower_bound(kv->root, op->key, op->key_len, false);
	while (node && items < op->max_items) {
		size_t entry = 2 + (size_t)node->key_len + 4 + node->value_len;
		if (capacity - used < entry)
			break; /* the client continues from the last key */
		oskr_kv_put_u16(result + used, node->key_len);
		memcpy(result + used + 2, node->key, node->key_len);
		used += 2 + (size_t)node->key_len;
		oskr_kv_put_u32(result + used, node->value_len);
		if (node->value_len)
			memcpy(result + used + 4, node->value, node->value_len);
		used += 4 + (size_t)node->value_len;
		items++;
		node = tree_lower_bound(kv->root, node->key, node->key_len,
					true);
	}
	*result_len = used;
	return 0;
}

static int kv_execute(void *app, const void *op_bytes, size_t op_len,
		      void *result, size_t result_capacity, size_t *result_len)
{
	struct kv_app *kv = app;
	struct oskr_kv_op op;
	if (!oskr_kv_decode_op(op_bytes, op_len, &op))
		return result_status(result, result_capacity, result_len,
				     OSKR_KV_BAD_OP);
	switch (op.type) {
	case OSKR_KV_GET:
		return kv_get(kv, &op, result, result_capacity, result_len);
	case OSKR_KV_PUT:
		return kv_put(kv, &op, result, result_capacity, result_len);
	case OSKR_KV_DEL:
		return kv_del(kv, &op, result, result_capacity, result_len);
	case OSKR_KV_SCAN:
		return kv_scan(kv, &op, result, result_capacity, result_len);
	}
	return result_status(result, result_capacity, result_len,
			     OSKR_KV_BAD_OP);
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* Visit every node in key order without recursion (Morris traversal
 * would mutate the tree; an explicit growable stack is simpler). */
struct kv_walk {
	struct kv_node **stack;
	size_t depth, capacity;
};

static int walk_push_left(struct kv_walk *walk, struct kv_node *node)
{
	for (; node; node = node->left) {
		if (walk->depth == walk->capacity) {
			size_t capacity = walk->capacity ? walk->capacity * 2
							 : 64;
			struct kv_node **stack = realloc(
				walk->stack, capacity * sizeof(*stack));
			if (!stack)
				return -ENOMEM;
			walk->stack = stack;
			walk->capacity = capacity;
		}
		walk->stack[walk->depth++] = node;
	}
	return 0;
}

static int kv_snapshot(void *app, void **out, size_t *out_len)
{
	struct kv_app *kv = app;
	struct kv_walk walk = { 0 };
	size_t size = KV_SNAPSHOT_MAGIC_LEN + 8;
	int ret = walk_push_left(&walk, kv->root);
	while (ret == 0 && walk.depth) {
		struct kv_node *node = walk.stack[--walk.depth];
		size += 2 + (size_t)node->key_len + 4 + node->value_len;
		ret = walk_push_left(&walk, node->right);
	}
	if (ret)
		goto err_walk;
	uint8_t *blob = malloc(size);
	if (!blob) {
		ret = -ENOMEM;
		goto err_walk;
	}
	memcpy(blob, KV_SNAPSHOT_MAGIC, KV_SNAPSHOT_MAGIC_LEN);
	put_u64(blob + KV_SNAPSHOT_MAGIC_LEN, kv->entry_count);
	size_t at = KV_SNAPSHOT_MAGIC_LEN + 8;
	walk.depth = 0;
	ret = walk_push_left(&walk, kv->root); /* stack is big enough now */
	while (ret == 0 && walk.depth) {
		struct kv_node *node = walk.stack[--walk.depth];
		oskr_kv_put_u16(blob + at, node->key_len);
		memcpy(blob + at + 2, node->key, node->key_len);
		at += 2 + (size_t)node->key_len;
		oskr_kv_put_u32(blob + at, node->value_len);
		if (node->value_len)
			memcpy(blob + at + 4, node->value, node->value_len);
		at += 4 + (size_t)node->value_len;
		ret = walk_push_left(&walk, node->right);
	}
	if (ret) {
		free(blob);
		goto err_walk;
	}
	free(walk.stack);
	*out = blob;
	*out_len = size;
	return 0;

err_walk:
	free(walk.stack);
	return ret;
}

static int kv_restore(void *app, const void *snapshot, size_t len)
{
	struct kv_app *kv = app;
	const uint8_t *p = snapshot;
	if (len < KV_SNAPSHOT_MAGIC_LEN + 8 ||
	    memcmp(p, KV_SNAPSHOT_MAGIC, KV_SNAPSHOT_MAGIC_LEN) != 0)
		return -EINVAL;
	uint64_t count = get_u64(p + KV_SNAPSHOT_MAGIC_LEN);
	size_t at = KV_SNAPSHOT_MAGIC_LEN + 8;
	/* Each entry takes at least 6 bytes: refuse an impossible count
	 * before allocating anything for it. */
	if (count > (len - at) / 6)
		return -EINVAL;

	/* Build the new tree aside; keys arrive sorted, so each insert goes
	 * to the right spine. The old state stays until all is valid. */
	struct kv_app fresh = { .priority_state = kv->priority_state };
	const uint8_t *prev_key = NULL;
	size_t prev_key_len = 0;
	int ret = -EINVAL;
	for (uint64_t i = 0; i < count; i++) {
		if (len - at < 2)
			goto err_fresh;
		size_t key_len = oskr_kv_get_u16(p + at);
		at += 2;
		if (key_len > OSKR_KV_MAX_KEY || len - at < key_len)
			goto err_fresh;
		const uint8_t *key = p + at;
		at += key_len;
		if (len - at < 4)
			goto err_fresh;
		size_t value_len = oskr_kv_get_u32(p + at);
		at += 4;
		if (value_len > OSKR_KV_MAX_VALUE || len - at < value_len)
			goto err_fresh;
		const uint8_t *value = p + at;
		at += value_len;
		if (prev_key &&
		    key_compare(prev_key, prev_key_len, key, key_len) >= 0)
			goto err_fresh; /* unsorted or duplicate key */
		struct kv_node *node =
			node_new(&fresh, key, key_len, value, value_len);
		if (!node) {
			ret = -ENOMEM;
			goto err_fresh;
		}
		tree_insert(&fresh.root, node);
		fresh.entry_count++;
		prev_key = key;
		prev_key_len = key_len;
	}
	if (at != len)
		goto err_fresh;
	tree_free(kv->root);
	kv->root = fresh.root;
	kv->entry_count = fresh.entry_count;
	kv->priority_state = fresh.priority_state;
	return 0;

err_fresh:
	tree_free(fresh.root);
	return ret;
}

const struct oskr_app_ops oskr__app_kv = {
	.name = "kv",
	.create = kv_create,
	.destroy = kv_destroy,
	.execute = kv_execute,
	.snapshot = kv_snapshot,
	.restore = kv_restore,
};
