"""The catalogue of invoice-rule violations: every code with its Chinese and English message.

:data:`MESSAGES` maps a stable code (``tax_rate_unknown``, ``line_sum_mismatch`` …) to its two
``str.format`` templates; :func:`violation` builds a :class:`~chalicelib.domain.models.Violation`
from it. The rules (:mod:`chalicelib.domain.validation_rules`) and the normalisers speak only in these
codes, and ``docs/invoice-rules.md`` documents each of them (a test keeps the two in step).
"""

from __future__ import annotations

from typing import Any

from chalicelib.domain.models import Violation

#: code → (Chinese template, English template). Templates use ``str.format`` fields.
MESSAGES: dict[str, tuple[str, str]] = {
    # parties
    "seller_tax_id_required": ("销售方纳税人识别号不能为空", "the seller's tax id is required"),
    "tax_id_format": (
        "{party}纳税人识别号格式错误：须为15、17、18或20位数字或大写字母",
        "the {party_en} tax id must be 15, 17, 18 or 20 digits or upper-case letters",
    ),
    "tax_id_checksum": (
        "{party}统一社会信用代码校验位错误（GB 32100-2015）",
        "the {party_en} unified social credit code fails the GB 32100-2015 check character",
    ),
    "tax_id_whitespace": (
        "{party}纳税人识别号不能包含空格或其他空白字符（仅自动去除首尾空白）",
        "the {party_en} tax id contains a space or other whitespace (only leading and trailing whitespace is trimmed)",
    ),
    "tax_id_alphabet": (
        "{party}统一社会信用代码不能包含字母I、O、S、V、Z（GB 32100-2015）",
        "the {party_en} unified social credit code contains I, O, S, V or Z, which GB 32100-2015 does not use",
    ),
    "tax_id_region": (
        "{party}统一社会信用代码第3至8位（行政区划码）须为数字",
        "positions 3-8 of the {party_en} unified social credit code (the region code) must be digits",
    ),
    "buyer_tax_id_required": ("企业购买方须提供纳税人识别号", "a company buyer needs a tax id"),
    "special_invoice_buyer_tax_id": (
        "增值税专用发票须提供购买方纳税人识别号",
        "a special VAT invoice needs the buyer's tax id",
    ),
    "name_required": ("{party}名称不能为空", "the {party_en} name is required"),
    "name_too_long": (
        "{party}名称不能超过100个字符（当前{length}个）",
        "the {party_en} name is longer than 100 characters ({length})",
    ),
    "address_phone_too_long": (
        "{party}地址和电话合计不能超过100个字符（当前{length}个）",
        "the {party_en} address and phone together are longer than 100 characters ({length})",
    ),
    "bank_account_too_long": (
        "{party}开户银行和银行账号合计不能超过100个字符（当前{length}个）",
        "the {party_en} bank and account together are longer than 100 characters ({length})",
    ),
    "remark_too_long": (
        "备注不能超过230个字符（当前{length}个）",
        "the remark is longer than 230 characters ({length})",
    ),
    # lines: identity and rates
    "no_lines": ("发票明细不能为空", "the invoice has no lines"),
    "too_many_lines": (
        "发票明细最多2000行（含折扣行），当前{count}行",
        "at most 2000 lines (discount lines included); this invoice has {count}",
    ),
    "line_name_required": ("商品名称不能为空", "the goods name is required"),
    "tax_code_format": ("税收分类编码须为19位数字", "the tax classification code must be 19 digits"),
    "tax_code_unknown": (
        "税收分类编码{code}不在分类编码表（版本{version}）中",
        "tax classification code {code} is not in the code table (version {version})",
    ),
    "tax_rate_unknown": (
        "税率{rate}不是有效的增值税税率或征收率",
        "{rate} is not a VAT rate (13%, 9%, 6%, 5%, 3%, 1.5%, 1% or 0%)",
    ),
    "tax_rate_not_allowed": (
        "税收分类编码{code}不允许税率{rate}（允许：{allowed}）",
        "tax classification code {code} does not allow rate {rate} (allowed: {allowed})",
    ),
    "zero_rate_flag_required": (
        "0%税率的明细须注明零税率标识（免税、不征税或普通零税率）",
        "a 0% line needs a zero-rate flag (exempt, not taxable or ordinary zero rate)",
    ),
    "zero_rate_flag_unexpected": (
        "非0%税率的明细不能带零税率标识",
        "only 0% lines carry a zero-rate flag",
    ),
    "zero_rate_flag_not_allowed": (
        "税收分类编码{code}不允许零税率标识{flag}",
        "tax classification code {code} does not allow the zero-rate flag {flag}",
    ),
    "short_name_mismatch": (
        "商品简称“{short_name}”与分类编码表中的简称“{expected}”不一致",
        "short name '{short_name}' differs from the code table's '{expected}'",
    ),
    # lines: numbers
    "money_out_of_range": ("数值超出允许范围", "the number is out of range"),
    "money_precision": ("金额须精确到分（最多两位小数）", "money has at most two decimals"),
    "price_precision": ("单价和数量最多8位小数", "unit price and quantity have at most 8 decimals"),
    "price_quantity_pair": (
        "单价和数量须同时填写或同时为空",
        "unit price and quantity are given together or not at all",
    ),
    "unit_price_not_positive": ("单价须大于零", "the unit price must be above zero"),
    "quantity_sign": (
        "数量符号错误：蓝字发票商品行数量为正，折扣行和红字发票数量为负",
        "wrong quantity sign: positive on blue lines, negative on discount lines and red invoices",
    ),
    "line_sum_mismatch": (
        "不含税金额{amount}加税额{tax}不等于含税金额{total}",
        "amount {amount} plus tax {tax} is not the total {total}",
    ),
    "line_tax_tolerance": (
        "金额×税率与税额相差{deviation}，超过允许误差0.06",
        "amount × rate differs from the tax by {deviation}, more than 0.06",
    ),
    "price_quantity_mismatch": (
        "单价×数量与金额相差{deviation}，超过允许误差0.01",
        "unit price × quantity differs from the amount by {deviation}, more than 0.01",
    ),
    # discount lines
    "discount_position": ("折扣行必须紧跟在被折扣行之后", "a discount line must directly follow the line it discounts"),
    "discount_multiple": ("每个商品行最多只能有一个折扣行", "a line has at most one discount line"),
    "discount_name_mismatch": (
        "折扣行的商品名称须与被折扣行相同",
        "a discount line has the same goods name as the discounted line",
    ),
    "discount_rate_mismatch": (
        "折扣行的税率须与被折扣行相同",
        "a discount line has the same tax rate as the discounted line",
    ),
    "discount_code_mismatch": (
        "折扣行的税收分类编码和简称须与被折扣行相同",
        "a discount line has the same tax code and short name as the discounted line",
    ),
    "discount_not_negative": ("折扣行金额须为负数", "a discount line's amount and total are below zero"),
    "discount_exceeds_line": (
        "折扣行金额不能大于被折扣行的金额",
        "a discount is not larger than the line it discounts",
    ),
    "discount_on_red": ("红字发票不能含折扣行，请将折扣并入商品行", "red invoices carry no discount lines: net them"),
    # colour
    "blue_line_not_positive": (
        "蓝字发票的商品行金额须为正数（折扣行除外）",
        "blue invoice lines are positive: amount and total above zero (discount lines excepted)",
    ),
    "blue_total_not_positive": ("蓝字发票价税合计须大于零", "a blue invoice's total is above zero"),
    "red_line_not_negative": (
        "红字发票明细的金额和含税金额须为负数，税额不能为正数",
        "a red invoice line's amount and total are below zero, its tax not above zero",
    ),
    "red_total_not_negative": ("红字发票价税合计须小于零", "a red invoice's total is below zero"),
    "red_original_line_missing": (
        "红字发票明细应注明对应的蓝字发票行号",
        "a red invoice line should name the blue line it reverses",
    ),
    # totals and limits
    "total_mismatch": (
        "明细含税金额合计{sum}不等于价税合计{total}",
        "the line totals add up to {sum}, not the invoice total {total}",
    ),
    "total_amount_mismatch": (
        "明细不含税金额合计{sum}不等于合计金额{total}",
        "the line amounts add up to {sum}, not the total amount {total}",
    ),
    "total_tax_mismatch": (
        "明细税额合计{sum}不等于合计税额{total}",
        "the line taxes add up to {sum}, not the total tax {total}",
    ),
    "invoice_tax_tolerance": (
        "全票金额×税率合计与税额合计相差{deviation}，超过允许误差{tolerance}",
        "Σ amount × rate differs from Σ tax by {deviation}, more than {tolerance}",
    ),
    "single_invoice_limit": (
        "不含税金额{amount}超过单张发票开票限额{limit}",
        "the amount excluding tax {amount} is above the single-invoice limit {limit}",
    ),
    # raised by normalise / normalise_refund (ValidationFailed), listed here to share the catalogue
    "event_not_paid": ("事件不是付款事件，不能开具蓝字发票", "only a paid event yields a blue invoice"),
    "event_not_refund": ("事件不是退款事件，不能开具红字发票", "only a refund event yields a red invoice"),
    "event_currency": ("仅支持人民币（CNY）订单，当前为{currency}", "only CNY orders are invoiced, not {currency}"),
    "event_amount_not_positive": ("订单金额须大于零", "the order amount must be above zero"),
    "event_line_negative": ("订单明细金额或优惠不能为负数", "an order line's total or discount is negative"),
    "event_labelled_negative": (
        "平台标明的{what}不能为负数",
        "the {what_en} the platform labels is negative",
    ),
    "event_total_mismatch": (
        "订单明细与实付金额不符：{breakdown}，合计{expected}，实付{amount}，相差{difference}。"
        "网关不会补造或改写明细：请让平台发送全部明细，或标明运费、费用和订单优惠",
        "the order does not add up: {breakdown_en} comes to {expected}, but {amount} was paid "
        "(difference {difference}); no line is made up or changed: send every line, or label shipping, "
        "fees and order discounts",
    ),
    "event_unit_price_mismatch": (
        "明细单价{price}×数量{quantity}＝{product}，与该行优惠前金额{gross}相差{difference}，"
        "超过允许误差0.01；单价不会被自动改写",
        "unit price {price} × quantity {quantity} = {product} differs from the line's amount before "
        "discount {gross} by {difference}, more than 0.01; the price is never re-derived",
    ),
    "event_shipping_item_missing": (
        "订单含运费{shipping}，但店铺未配置运费的开票项目：请在店铺配置中设置 shipping_item（税收分类编码和税率）",
        "the order carries {shipping} of shipping but the store has no shipping_item: configure the "
        "tax code and rate shipping is invoiced under",
    ),
    "event_fee_item_missing": (
        "订单含小费或服务费{fees}，但店铺未配置其开票项目：请在店铺配置中设置 fee_item（税收分类编码和税率）",
        "the order carries {fees} of tips or fees but the store has no fee_item: configure the tax "
        "code and rate fees are invoiced under",
    ),
    "event_order_discount_exceeds_lines": (
        "订单优惠{discount}大于其适用的商品明细合计{lines}",
        "the order discount {discount} is larger than the goods lines it applies to ({lines})",
    ),
    "refund_amount_not_positive": ("退款金额须大于零", "the refund amount must be above zero"),
    "refund_amount_missing": ("退款事件缺少退款金额", "the refund event carries no refund amount"),
    "refund_exceeds_payment": ("退款金额超过订单支付金额", "the refund is larger than the payment"),
    "refund_exceeds_invoice": (
        "累计红冲金额{reversed}加本次退款{refund}超过蓝字发票价税合计{total}",
        "already reversed {reversed} plus this refund {refund} is more than the blue invoice total {total}",
    ),
    "refund_source_not_blue": ("只能对蓝字发票开具红字发票", "only a blue invoice can be reversed"),
    "refund_ledger_mismatch": (
        "已开红字发票合计{sum}与已红冲金额{reversed}不一致",
        "the previous red invoices add up to {sum}, not the already reversed {reversed}",
    ),
    # raised at intake for a signed body whose content cannot be used (UnusableContent): the order is
    # recorded as rejected with these; ``detail`` is the platform module's own (English) finding
    "event_field_missing": ("事件缺少字段{field}", "the event has no {field}"),
    "event_amount_invalid": (
        "字段{field}不是有效的金额或数量（须为非负数，最多8位小数）",
        "{field} is not a valid amount or quantity: {detail}",
    ),
    "event_field_invalid": (
        "字段{field}的格式不符合平台报文规范",
        "{field} does not have the documented format: {detail}",
    ),
    "event_unreadable": ("报文内容无法解析", "the body cannot be read: {detail}"),
    "event_order_id_unreadable": (
        "无法读取订单号：订单以事件号{event_id}记录",
        "the order id cannot be read: the order is recorded under the event id {event_id}",
    ),
    "event_id_conflict": (
        "事件号{event_id}已被另一订单{held_by}使用：本订单已记录为被拒，请核对发送方的事件号",
        "the event id {event_id} was already sent with another order, {held_by}: this order is recorded as "
        "rejected; check the sender's event ids",
    ),
}


def violation(field: str, code: str, /, **params: Any) -> Violation:
    """Build a :class:`Violation` from the catalogue (unknown template fields stay literal)."""
    zh, en = MESSAGES[code]
    safe = _SafeDict({k: str(v) for k, v in params.items()})
    return Violation(field=field, code=code, message=zh.format_map(safe), message_en=en.format_map(safe))


class _SafeDict(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"
