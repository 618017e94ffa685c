"""The other candidate for learning the performer, measured against the session memory: online
fine-tuning of the voice's output heads (their biases, or their whole output layers) by SGD on the
performer's events, in numpy. Same protocol as bench_learn's nll_drop after 10 calls: learn from
ten phrases, NLL per event of the next three, per head (pitch, offset, duration, velocity).

    python benchmarks/learn_adapter.py      # prints the drops; README: "It learns you during the set"

(Reads the step model's private arrays: a measurement, not a feature.)"""
import numpy as np, sys, copy
sys.path.insert(0, __import__('os').path.dirname(__file__))
from bench_learn import ff_phrases
from improv.evaluation.licks import licks
from improv.evaluation.learning import session_rows
from improv.model.voices import load_player
from improv.model.step_model import HEAD_ORDER
from improv.realtime.memory import SessionMemory
from improv.realtime.memory_cursor import MemoryCursor
sm=load_player('checkpoints/folk.npz').step_model(); tok=sm.tokenizer

def feats(model, state, row):
    pre = model._head_w @ state.h[-1] + model._head_b
    chosen=[int(row[f]) for f in HEAD_ORDER]; out=[]
    for k in range(4):
        z = pre[model._head_slices[k]]
        for j in range(k):
            z = z + model._cond[(k, j)][chosen[j]]
        out.append(np.maximum(z,0))
    return out

def events(model, rows_list):
    data=[]
    for i,rows in enumerate(rows_list):
        st=model.step(model.initial_state(), tok.special(128))
        if i: 
            for x in rows_list[i-1]: st=model.step(st,x)
        for x in rows:
            data.append((feats(model,st,x), x)); st=model.step(st,x)
    return data

def nll(model, rows_list, ks):
    tot=np.zeros(4); n=0
    for k in ks:
        st=model.step(model.initial_state(), tok.special(128))
        for x in rows_list[k-1]: st=model.step(st,x)
        for x in rows_list[k]:
            tot+=model.event_nll(st,x); st=model.step(st,x); n+=1
    return tot/n

def adapt(model, data, lr, epochs, bias_only):
    m=copy.copy(model); m._out_w=[w.copy() for w in model._out_w]; m._out_b=[b.copy() for b in model._out_b]
    for _ in range(epochs):
        for fs, x in data:
            for k, field in enumerate(HEAD_ORDER):
                z = m._out_w[k] @ fs[k] + m._out_b[k]
                p = np.exp(z - z.max()); p/=p.sum(); p[int(x[field])]-=1
                m._out_b[k] -= lr*p
                if not bias_only: m._out_w[k] -= lr*np.outer(p, fs[k])*0.1
    return m

for name, ph in (("wt",licks(14,'wholetone',1)),("blues",licks(14,'blues',1)),("ff",ff_phrases(14))):
    rows=session_rows(tok,ph)
    base=nll(sm,rows,range(10,13))
    data=events(sm,rows[:10])
    print(name,'voice',np.round(base,2), base.sum().round(2))
    memory = SessionMemory(tok, adapt=1.0)
    for rows_k in rows[:10]:
        for x in rows_k:
            memory.learn(x, 0.0)
    cached = np.zeros(4); n = 0
    for k in range(10, 13):
        st = sm.step(sm.initial_state(), tok.special(128))
        for x in rows[k - 1]:
            st = sm.step(st, x)
        cursor = MemoryCursor(memory, memory.share(0.0), 1.0, list(rows[k - 1][-3:]))
        for x in rows[k]:
            cached += [-cursor.mix(f, x, lg)[int(x[f])] for f, lg in enumerate(sm.event_logits(st, x))]
            cursor.push(x); st = sm.step(st, x); n += 1
    d = base - cached / n
    print('   the session memory (cache), adapt 1: drop (P,O,D,V)', np.round(d, 2), 'total', d.sum().round(2), 'notes', d[:3].sum().round(2))
    for bias_only in (True, False):
        for lr in (0.05,0.2):
            for ep in (1,3):
                m=adapt(sm,data,lr,ep,bias_only)
                d=base-nll(m,rows,range(10,13))
                print('  ', 'bias' if bias_only else 'head', 'lr',lr,'epochs',ep,'drop (P,O,D,V)',np.round(d,2),'total',d.sum().round(2), 'notes', d[:3].sum().round(2))
