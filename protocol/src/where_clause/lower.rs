//! Lowering: turns `pg_query`'s parse tree of the WHERE expression into a typed [`Expr`],
//! rejecting every construct outside the supported set with Electric's messages.

use pg_query::protobuf::{
    a_const::Val, node::Node as N, AConst, AExpr, AExprKind, BoolExprType, BoolTestType, ColumnRef,
    FuncCall, Node, NullTestType, TypeCast,
};

use super::arith::{self, ArithOp, UnaryOp};
use super::coerce::{coerce, convert, invalid, no_overload, resolve_common, to_bool, Operand};
use super::datum::Datum;
use super::error::WhereError;
use super::expr::{ArrayOp, BoolTest, CmpOp, Expr};
use super::func::Func;
use super::like;
use super::lower_array;
use super::lower_func;
use super::numeric;
use super::syntax::PREFIX;
use super::types::{resolve_cast_type, Category, Type};

/// What lowering needs to know: the table's columns and the `$n` parameter values.
pub(crate) struct Scope<'a> {
    pub(crate) names: &'a [String],
    pub(crate) types: &'a [Type],
    pub(crate) params: &'a [String],
    /// Which parameters the clause referenced, to reject unused ones as upstream does.
    pub(crate) used_params: Vec<bool>,
    /// Subquery tables, when subqueries are allowed (`None`: they are rejected).
    pub(crate) tables: Option<&'a super::sublink::Tables<'a>>,
    /// The dependencies met so far (an `Expr::Sublink` indexes this).
    pub(crate) subqueries: Vec<super::sublink::Subquery>,
}

/// Converts a parse-tree location (0-based in `SELECT 1 WHERE <where>`) to the user's clause.
pub(crate) fn user_location(location: i32) -> usize {
    usize::try_from(location)
        .unwrap_or(0)
        .saturating_sub(PREFIX.len())
}

pub(crate) fn typed(expr: Expr, location: usize) -> Operand {
    Operand::Typed { expr, location }
}

impl Scope<'_> {
    pub(crate) fn lower(&mut self, node: &Node) -> Result<Operand, WhereError> {
        let Some(inner) = node.node.as_ref() else {
            return Err(invalid(0, "empty expression"));
        };
        match inner {
            N::AConst(constant) => lower_const(constant),
            N::ColumnRef(column) => self.lower_column(column),
            N::ParamRef(param) => self.lower_param(param.number, user_location(param.location)),
            N::TypeCast(cast) => self.lower_cast(cast),
            N::BoolExpr(bool_expr) => {
                let location = user_location(bool_expr.location);
                let mut args = Vec::with_capacity(bool_expr.args.len());
                for arg in &bool_expr.args {
                    args.push(to_bool(self.lower(arg)?)?);
                }
                let expr = match BoolExprType::try_from(bool_expr.boolop) {
                    Ok(BoolExprType::AndExpr) => Expr::And(flatten(args, true)),
                    Ok(BoolExprType::OrExpr) => Expr::Or(flatten(args, false)),
                    Ok(BoolExprType::NotExpr) if args.len() == 1 => {
                        Expr::Not(Box::new(args.remove(0)))
                    }
                    _ => {
                        return Err(invalid(
                            location,
                            "BoolExpr is not supported in this context",
                        ))
                    }
                };
                Ok(typed(expr, location))
            }
            N::AExpr(a_expr) => self.lower_a_expr(a_expr),
            N::NullTest(test) => {
                let location = user_location(test.location);
                let arg = self.required(test.arg.as_deref(), location)?;
                let arg = match arg {
                    Operand::Typed { expr, .. } => expr,
                    unknown => coerce(unknown, &Type::Text)?,
                };
                let negated = test.nulltesttype == NullTestType::IsNotNull as i32;
                Ok(typed(
                    Expr::NullTest {
                        arg: Box::new(arg),
                        negated,
                    },
                    location,
                ))
            }
            N::BooleanTest(test) => {
                let location = user_location(test.location);
                let test_kind = bool_test(test.booltesttype).ok_or_else(|| {
                    invalid(location, "BooleanTest is not supported in this context")
                })?;
                let arg = self.required(test.arg.as_deref(), location)?;
                if let Operand::Typed { expr, .. } = &arg {
                    if expr.ty() != Type::Bool {
                        return Err(invalid(
                            location,
                            format!(
                                "argument of {} must be bool, not {}",
                                test_kind.sql(),
                                expr.ty()
                            ),
                        ));
                    }
                }
                let arg = coerce(arg, &Type::Bool)?;
                Ok(typed(
                    Expr::BoolTest {
                        arg: Box::new(arg),
                        test: test_kind,
                    },
                    location,
                ))
            }
            N::SubLink(sublink) => Ok(typed(
                self.lower_sublink(sublink)?,
                user_location(sublink.location),
            )),
            N::FuncCall(call) => self.lower_call(call),
            N::AIndirection(indirection) => self.lower_indirection(indirection),
            N::AArrayExpr(ctor) => self.lower_array_ctor(ctor),
            N::CoalesceExpr(c) => self.lower_variadic(Func::Coalesce, &c.args, c.location),
            N::MinMaxExpr(m) => match lower_func::min_max_func(m.op) {
                Some(func) => self.lower_variadic(func, &m.args, m.location),
                None => Err(invalid(
                    user_location(m.location),
                    "MinMaxExpr is not supported",
                )),
            },
            other => Err(invalid(
                node_location(other),
                format!("{} is not supported in this context", node_type_name(other)),
            )),
        }
    }

    pub(crate) fn required(
        &mut self,
        node: Option<&Node>,
        location: usize,
    ) -> Result<Operand, WhereError> {
        match node {
            Some(node) => self.lower(node),
            None => Err(invalid(location, "missing operand")),
        }
    }

    fn lower_column(&self, column: &ColumnRef) -> Result<Operand, WhereError> {
        let location = user_location(column.location);
        let mut path = Vec::with_capacity(column.fields.len());
        for field in &column.fields {
            match &field.node {
                Some(N::String(s)) => path.push(s.sval.as_str()),
                _ => path.push("*"),
            }
        }
        let found = match path.as_slice() {
            [name] => self.names.iter().position(|n| n == name),
            _ => None,
        };
        let Some(index) = found else {
            let shown: Vec<String> = path.iter().map(|p| identifier(p)).collect();
            return Err(invalid(
                location,
                format!("unknown reference {}", shown.join(".")),
            ));
        };
        Ok(typed(
            Expr::Column {
                index,
                name: self.names[index].clone(),
                ty: self.types[index].clone(),
            },
            location,
        ))
    }

    fn lower_param(&mut self, number: i32, location: usize) -> Result<Operand, WhereError> {
        let slot = usize::try_from(number)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .filter(|&i| i < self.params.len());
        let Some(index) = slot else {
            return Err(invalid(
                location,
                format!("parameter ${number} was not provided"),
            ));
        };
        self.used_params[index] = true;
        Ok(Operand::Unknown {
            text: Some(self.params[index].clone()),
            location,
        })
    }

    fn lower_cast(&mut self, cast: &TypeCast) -> Result<Operand, WhereError> {
        let location = user_location(cast.location);
        let arg = self.required(cast.arg.as_deref(), location)?;
        let to = cast_target(cast, location)?;
        let arg_location = arg.location();
        let expr = match arg {
            unknown @ Operand::Unknown { .. } => coerce(unknown, &to)?,
            Operand::Typed { expr, location } => convert(expr, &to, false, location)?,
        };
        Ok(typed(expr, arg_location))
    }

    fn lower_a_expr(&mut self, a_expr: &AExpr) -> Result<Operand, WhereError> {
        let location = user_location(a_expr.location);
        let name = operator_name(&a_expr.name);
        let kind = AExprKind::try_from(a_expr.kind).unwrap_or(AExprKind::Undefined);
        let expr = match kind {
            AExprKind::AexprOp if a_expr.lexpr.is_none() => {
                self.lower_unary(a_expr, &name, location)?
            }
            AExprKind::AexprOp | AExprKind::AexprLike | AExprKind::AexprIlike => {
                self.lower_binary(a_expr, &name, location)?
            }
            AExprKind::AexprDistinct | AExprKind::AexprNotDistinct => {
                let (lhs, rhs, ty) = self.operand_pair(a_expr, location)?;
                Expr::Distinct {
                    negated: kind == AExprKind::AexprNotDistinct,
                    ty,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                }
            }
            AExprKind::AexprIn => self.lower_in(a_expr, name == "<>", location)?,
            AExprKind::AexprOpAny | AExprKind::AexprOpAll => {
                self.lower_any_all(a_expr, &name, kind == AExprKind::AexprOpAll, location)?
            }
            AExprKind::AexprBetween
            | AExprKind::AexprNotBetween
            | AExprKind::AexprBetweenSym
            | AExprKind::AexprNotBetweenSym => self.lower_between(a_expr, kind, location)?,
            _ => {
                return Err(invalid(
                    location,
                    format!(
                        "expression {name} of {} is not currently supported",
                        kind.as_str_name()
                    ),
                ))
            }
        };
        Ok(typed(expr, location))
    }

    fn lower_binary(
        &mut self,
        a_expr: &AExpr,
        name: &str,
        location: usize,
    ) -> Result<Expr, WhereError> {
        if let Some(op) = CmpOp::from_sql(name) {
            let lhs = self.required(a_expr.lexpr.as_deref(), location)?;
            let rhs = self.required(a_expr.rexpr.as_deref(), location)?;
            if matches!(op, CmpOp::Eq | CmpOp::Ne)
                && (lower_array::is_array(&lhs) || lower_array::is_array(&rhs))
            {
                let op = if op == CmpOp::Eq {
                    ArrayOp::Eq
                } else {
                    ArrayOp::Ne
                };
                return lower_array::array_op(op, lhs, rhs, location);
            }
            let (lhs, rhs, ty) = coerce_pair(lhs, rhs, location)?;
            if matches!(ty, Type::Enum(_)) && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                return Err(no_overload(location));
            }
            return Ok(Expr::Compare {
                op,
                ty,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            });
        }
        if let Some(op) = ArithOp::from_sql(name) {
            return self.lower_arith(a_expr, op, location);
        }
        if name == "||" {
            return self.lower_concat(a_expr, location);
        }
        if let Some(op) = ArrayOp::from_sql(name) {
            return self.lower_array_op(a_expr, op, location);
        }
        let (negated, case_insensitive) = match name {
            "~~" => (false, false),
            "!~~" => (true, false),
            "~~*" => (false, true),
            "!~~*" => (true, true),
            _ => return Err(invalid(location, format!("unknown binary operator {name}"))),
        };
        let arg = self.required(a_expr.lexpr.as_deref(), location)?;
        let pattern = self.required(a_expr.rexpr.as_deref(), location)?;
        // `bpchar ~~ text` matches the padded value (the cast to text would trim it).
        let arg = match arg {
            Operand::Typed { expr, .. } if expr.ty() == Type::Bpchar => expr,
            other => string_operand(other, location)?,
        };
        let pattern = string_operand(pattern, location)?;
        if let Expr::Const {
            value: Datum::Text(text),
            ..
        } = &pattern
        {
            like::check_pattern(text)
                .map_err(|_| invalid(location, like::TRAILING_ESCAPE_MESSAGE))?;
        }
        Ok(Expr::Like {
            arg: Box::new(arg),
            pattern: Box::new(pattern),
            negated,
            case_insensitive,
        })
    }

    fn lower_arith(
        &mut self,
        a_expr: &AExpr,
        op: ArithOp,
        location: usize,
    ) -> Result<Expr, WhereError> {
        let lhs = self.required(a_expr.lexpr.as_deref(), location)?;
        let rhs = self.required(a_expr.rexpr.as_deref(), location)?;
        // An untyped literal or parameter takes the other operand's type, as in Postgres
        // (a shift count is always int4); two untyped operands are ambiguous.
        let (left_ty, right_ty) = match (&lhs, &rhs) {
            (Operand::Typed { expr: l, .. }, Operand::Typed { expr: r, .. }) => (l.ty(), r.ty()),
            (Operand::Typed { expr, .. }, Operand::Unknown { .. }) => {
                let right = if matches!(op, ArithOp::Shl | ArithOp::Shr) {
                    Type::Int4
                } else {
                    arith::untyped_operand_type(op, &expr.ty())
                };
                (expr.ty(), right)
            }
            (Operand::Unknown { .. }, Operand::Typed { expr, .. }) => {
                (arith::untyped_operand_type(op, &expr.ty()), expr.ty())
            }
            _ => return Err(no_overload(location)),
        };
        // `date + 'literal'` is ambiguous in Postgres (int4, interval, time, ...); only
        // `date - 'literal'` resolves (to date - date).
        let untyped_date_sum = op != ArithOp::Sub
            && left_ty == Type::Date
            && right_ty == Type::Date
            && (matches!(lhs, Operand::Unknown { .. }) || matches!(rhs, Operand::Unknown { .. }));
        if untyped_date_sum {
            return Err(no_overload(location));
        }
        let (lt, rt, ty) =
            arith::binary_types(op, &left_ty, &right_ty).ok_or_else(|| no_overload(location))?;
        let lhs = coerce(lhs, &lt)?;
        let rhs = coerce(rhs, &rt)?;
        Ok(Expr::Arith {
            op,
            ty,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        })
    }

    fn lower_unary(
        &mut self,
        a_expr: &AExpr,
        name: &str,
        location: usize,
    ) -> Result<Expr, WhereError> {
        let Some(op) = UnaryOp::from_sql(name) else {
            return Err(invalid(location, format!("unknown unary operator {name}")));
        };
        let arg = self.required(a_expr.rexpr.as_deref(), location)?;
        let Operand::Typed {
            expr,
            location: arg_location,
        } = arg
        else {
            return Err(no_overload(location));
        };
        let ty = arith::unary_type(op, &expr.ty()).ok_or_else(|| no_overload(location))?;
        let arg = convert(expr, &ty, true, arg_location)?;
        Ok(Expr::Unary {
            op,
            ty,
            arg: Box::new(arg),
        })
    }

    /// `||` on strings; a non-string operand is converted with its `::text` cast, as
    /// Postgres's `anynonarray || text` does. Arrays and unsupported types are rejected.
    fn lower_concat(&mut self, a_expr: &AExpr, location: usize) -> Result<Expr, WhereError> {
        let lhs = self.required(a_expr.lexpr.as_deref(), location)?;
        let rhs = self.required(a_expr.rexpr.as_deref(), location)?;
        let is_string = |o: &Operand| match o {
            Operand::Typed { expr, .. } => expr.ty().is_string(),
            Operand::Unknown { .. } => true,
        };
        // Postgres has no `int || int`: one side must be a string (or untyped).
        if !is_string(&lhs) && !is_string(&rhs) {
            return Err(no_overload(location));
        }
        let mut sides = Vec::with_capacity(2);
        for operand in [lhs, rhs] {
            if let Operand::Typed { expr, .. } = &operand {
                if matches!(expr.ty().category(), Category::Unsupported) {
                    return Err(no_overload(location));
                }
            }
            sides.push(coerce(operand, &Type::Text)?);
        }
        let rhs = sides.pop().expect("two sides");
        let lhs = sides.pop().expect("two sides");
        Ok(Expr::Concat {
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        })
    }

    /// Lowers both sides of a binary operator and coerces them to their comparison type.
    fn operand_pair(
        &mut self,
        a_expr: &AExpr,
        location: usize,
    ) -> Result<(Expr, Expr, Type), WhereError> {
        let lhs = self.required(a_expr.lexpr.as_deref(), location)?;
        let rhs = self.required(a_expr.rexpr.as_deref(), location)?;
        coerce_pair(lhs, rhs, location)
    }

    fn list_items(
        &mut self,
        node: Option<&Node>,
        location: usize,
    ) -> Result<Vec<Operand>, WhereError> {
        match node.and_then(|n| n.node.as_ref()) {
            Some(N::List(list)) => list.items.iter().map(|item| self.lower(item)).collect(),
            Some(N::SubLink(sublink)) => Err(invalid(
                user_location(sublink.location),
                "subqueries are not supported",
            )),
            _ => Err(invalid(location, "expected a list of values")),
        }
    }

    fn lower_in(
        &mut self,
        a_expr: &AExpr,
        negated: bool,
        location: usize,
    ) -> Result<Expr, WhereError> {
        let arg = self.required(a_expr.lexpr.as_deref(), location)?;
        let mut operands = vec![arg];
        operands.extend(self.list_items(a_expr.rexpr.as_deref(), location)?);
        let ty = resolve_common(&operands, location)?;
        let mut exprs = Vec::with_capacity(operands.len());
        for operand in operands {
            exprs.push(coerce(operand, &ty)?);
        }
        let arg = exprs.remove(0);
        Ok(Expr::In {
            arg: Box::new(arg),
            items: exprs,
            negated,
        })
    }

    /// `x BETWEEN a AND b` is `a <= x AND x <= b`; SYMMETRIC also accepts swapped bounds.
    fn lower_between(
        &mut self,
        a_expr: &AExpr,
        kind: AExprKind,
        location: usize,
    ) -> Result<Expr, WhereError> {
        let arg = self.required(a_expr.lexpr.as_deref(), location)?;
        let mut bounds = self.list_items(a_expr.rexpr.as_deref(), location)?;
        if bounds.len() != 2 {
            return Err(invalid(location, "BETWEEN needs two bounds"));
        }
        let high = bounds.pop().expect("two bounds");
        let low = bounds.pop().expect("two bounds");
        let operands = [arg, low, high];
        let ty = resolve_common(&operands, location)?;
        if matches!(ty, Type::Enum(_)) {
            return Err(no_overload(location));
        }
        let [arg, low, high] = operands;
        let (arg, low, high) = (coerce(arg, &ty)?, coerce(low, &ty)?, coerce(high, &ty)?);
        let compare = |op, lhs: &Expr, rhs: &Expr| Expr::Compare {
            op,
            ty: ty.clone(),
            lhs: Box::new(lhs.clone()),
            rhs: Box::new(rhs.clone()),
        };
        let within = |low: &Expr, high: &Expr| {
            Expr::And(vec![
                compare(CmpOp::Le, low, &arg),
                compare(CmpOp::Le, &arg, high),
            ])
        };
        let symmetric = matches!(
            kind,
            AExprKind::AexprBetweenSym | AExprKind::AexprNotBetweenSym
        );
        let test = if symmetric {
            Expr::Or(vec![within(&low, &high), within(&high, &low)])
        } else {
            within(&low, &high)
        };
        let negated = matches!(
            kind,
            AExprKind::AexprNotBetween | AExprKind::AexprNotBetweenSym
        );
        Ok(if negated {
            Expr::Not(Box::new(test))
        } else {
            test
        })
    }
}

/// Coerces two lowered operands to their comparison type.
fn coerce_pair(
    lhs: Operand,
    rhs: Operand,
    location: usize,
) -> Result<(Expr, Expr, Type), WhereError> {
    let operands = [lhs, rhs];
    let ty = resolve_common(&operands, location)?;
    let [lhs, rhs] = operands;
    Ok((coerce(lhs, &ty)?, coerce(rhs, &ty)?, ty))
}

/// Nested ANDs (or ORs) become one list, so `(a AND b) AND c` renders like `a AND b AND c`.
fn flatten(args: Vec<Expr>, is_and: bool) -> Vec<Expr> {
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        match arg {
            Expr::And(inner) if is_and => out.extend(inner),
            Expr::Or(inner) if !is_and => out.extend(inner),
            other => out.push(other),
        }
    }
    out
}

fn string_operand(operand: Operand, location: usize) -> Result<Expr, WhereError> {
    match operand {
        Operand::Typed { expr, .. } if expr.ty().category() != Category::String => {
            Err(no_overload(location))
        }
        other => coerce(other, &Type::Text),
    }
}

fn lower_const(constant: &AConst) -> Result<Operand, WhereError> {
    let location = user_location(constant.location);
    if constant.isnull {
        return Ok(Operand::Unknown {
            text: None,
            location,
        });
    }
    let (value, ty) = match &constant.val {
        Some(Val::Sval(s)) => {
            return Ok(Operand::Unknown {
                text: Some(s.sval.clone()),
                location,
            })
        }
        Some(Val::Ival(i)) => (Datum::Int(i64::from(i.ival)), Type::Int4),
        Some(Val::Boolval(b)) => (Datum::Bool(b.boolval), Type::Bool),
        // The grammar emits integers that overflow int4 as "float" constants too; Postgres
        // types those as int8 when they fit, else numeric.
        Some(Val::Fval(f)) => match f.fval.parse::<i64>() {
            Ok(v) if f.fval.bytes().all(|b| b.is_ascii_digit() || b == b'-') => {
                (Datum::Int(v), Type::Int8)
            }
            _ => {
                let text = numeric::parse_input(&f.fval).ok_or_else(|| {
                    invalid(location, format!("invalid numeric literal {}", f.fval))
                })?;
                (Datum::Numeric(text.into()), Type::Numeric)
            }
        },
        Some(Val::Bsval(_)) => return Err(invalid(location, "BitString values are not supported")),
        None => {
            return Err(invalid(
                location,
                "A_Const is not supported in this context",
            ))
        }
    };
    Ok(typed(Expr::Const { value, ty }, location))
}

fn cast_target(cast: &TypeCast, location: usize) -> Result<Type, WhereError> {
    let Some(type_name) = &cast.type_name else {
        return Err(invalid(location, "missing type in cast"));
    };
    let names: Vec<&str> = type_name
        .names
        .iter()
        .filter_map(|n| match &n.node {
            Some(N::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect();
    let shown = names
        .iter()
        .filter(|n| **n != "pg_catalog")
        .map(|n| identifier(n))
        .collect::<Vec<_>>()
        .join(".");
    let type_location = user_location(type_name.location);
    let ty = resolve_cast_type(&names)
        .ok_or_else(|| invalid(type_location, format!("unsupported type {shown}")))?;
    // `int4[]` and `int4[][]` are the same type: Postgres ignores declared dimensions.
    let ty = if type_name.array_bounds.is_empty() {
        ty
    } else {
        Type::Array(Box::new(ty))
    };
    // Type modifiers (`varchar(3)`, `numeric(10,2)`, bare `char` = `char(1)`) change values;
    // not supported yet rather than silently ignored.
    if !type_name.typmods.is_empty() {
        return Err(invalid(
            type_location,
            format!("type modifiers are not supported in this context ({shown})"),
        ));
    }
    Ok(ty)
}

fn bool_test(kind: i32) -> Option<BoolTest> {
    Some(match BoolTestType::try_from(kind).ok()? {
        BoolTestType::IsTrue => BoolTest::True,
        BoolTestType::IsNotTrue => BoolTest::NotTrue,
        BoolTestType::IsFalse => BoolTest::False,
        BoolTestType::IsNotFalse => BoolTest::NotFalse,
        BoolTestType::IsUnknown => BoolTest::Unknown,
        BoolTestType::IsNotUnknown => BoolTest::NotUnknown,
        BoolTestType::Undefined => return None,
    })
}

/// `OPERATOR(pg_catalog.=)` names the same operator as `=`.
pub(crate) fn operator_name(name: &[Node]) -> String {
    let parts: Vec<&str> = name
        .iter()
        .filter_map(|n| match &n.node {
            Some(N::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .collect();
    match parts.as_slice() {
        ["pg_catalog", op] | [op] => (*op).to_string(),
        other => other.join("."),
    }
}

pub(crate) fn unsupported_function(call: &FuncCall) -> WhereError {
    let location = user_location(call.location);
    let is_aggregate = !call.agg_order.is_empty()
        || call.agg_filter.is_some()
        || call.over.is_some()
        || call.agg_within_group
        || call.agg_star
        || call.agg_distinct;
    if is_aggregate {
        return invalid(location, "aggregation is not supported in this context");
    }
    let name = operator_name(&call.funcname);
    let shown: Vec<String> = name.split('.').map(identifier).collect();
    invalid(
        location,
        format!(
            "unknown or unsupported function {}/{}",
            shown.join("."),
            call.args.len()
        ),
    )
}

/// Upstream quotes identifiers that are not plain lowercase names.
fn identifier(name: &str) -> String {
    let mut chars = name.chars();
    let plain = chars.next().is_some_and(|c| c.is_lowercase() || c == '_')
        && chars.all(|c| c.is_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// The Postgres node name (`CaseExpr`, `A_ArrayExpr`, ...) for "is not supported" errors.
fn node_type_name(node: &N) -> String {
    let debug = format!("{node:?}");
    let rust_name = debug.split(['(', ' ', '{']).next().unwrap_or("Node");
    let bytes = rust_name.as_bytes();
    if rust_name == "SqlvalueFunction" {
        "SQLValueFunction".to_string()
    } else if bytes.len() > 1 && bytes[0] == b'A' && bytes[1].is_ascii_uppercase() {
        format!("A_{}", &rust_name[1..])
    } else {
        rust_name.to_string()
    }
}

/// Best-effort location of an unsupported node, via its serialized form.
fn node_location(node: &N) -> usize {
    let debug = format!("{node:?}");
    debug
        .rfind("location: ")
        .and_then(|at| {
            let digits: String = debug[at + 10..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '-')
                .collect();
            digits.parse::<i32>().ok()
        })
        .map_or(0, user_location)
}
